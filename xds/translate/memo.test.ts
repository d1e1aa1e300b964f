// A memo changes nothing but the cost: translating with one gives the very bytes a fresh translation
// gives, whatever sequence of fleets came before (every golden case, and random change sequences).

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import type { Any } from '../../envoy/generated/google/protobuf/any.js';
import { RouteConfiguration } from '../../envoy/generated/envoy/config/route/v3/route.js';
import type { TunnelNode } from '../model/node.js';
import { DEFAULT_SETTINGS, type Settings } from '../model/settings.js';
import { parseNodesFile } from '../sources/nodes-file.js';
import { TranslationMemo } from './memo.js';
import { translate, type ResourceSet, type Translation } from './translate.js';

function bytesOf(set: ResourceSet): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [type, byName] of set) for (const [name, any] of byName) out[`${type} ${name}`] = Buffer.from(any.value).toString('base64');
  return out;
}

function flatten(translation: Translation): Record<string, unknown> {
  return { cloud: bytesOf(translation.cloud), sidecar: bytesOf(translation.sidecar), edges: Object.fromEntries([...translation.edges].map(([n, s]) => [n, bytesOf(s)])), errors: translation.errors };
}

function same(nodes: readonly TunnelNode[], settings: Settings, memo: TranslationMemo, cidrs: readonly string[] = []): void {
  const fresh = translate(nodes, settings, cidrs);
  const memoized = translate(nodes, settings, cidrs, memo);
  assert.ok(fresh.ok && memoized.ok);
  assert.deepEqual(flatten(memoized), flatten(fresh));
}

const dir = join(import.meta.dirname, 'testdata');

describe('translation memo', () => {
  it('gives byte-identical results for every golden case, one memo across them all', () => {
    const memo = new TranslationMemo();
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.in.yaml')).sort()) {
      const input = parse(readFileSync(join(dir, file), 'utf8')) as { settings?: Partial<Settings>; nodes?: unknown; serviceCIDRs?: string[] };
      const settings = { ...DEFAULT_SETTINGS, ...input.settings };
      if (!translate([], settings).ok) continue;
      const { nodes } = parseNodesFile(stringify({ nodes: input.nodes ?? [] }), file);
      same(nodes, settings, memo, input.serviceCIDRs);
      same(nodes, settings, memo, input.serviceCIDRs);
    }
  });

  it('gives byte-identical results through random sequences of fleet changes', () => {
    const node = fc.record({
      index: fc.integer({ min: 0, max: 7 }),
      address: fc.integer({ min: 1, max: 9 }),
      kubeletPort: fc.constantFrom(10250, 10251),
      pods: fc.boolean(),
      role: fc.constantFrom('edge' as const, 'edge' as const, 'cloud' as const),
    });
    const fleet = fc.array(node, { maxLength: 8 }).map((entries) => {
      const byName = new Map<string, TunnelNode>();
      for (const e of entries) {
        byName.set(`node-${e.index}`, {
          name: `node-${e.index}`,
          addresses: [`192.0.2.${e.address}`],
          kubeletPort: e.kubeletPort,
          role: e.role,
          labels: {},
          podCIDRs: e.pods ? [`198.51.100.${e.index * 16}/28`] : [],
        });
      }
      return [...byName.values()];
    });
    const settings: Settings = { ...DEFAULT_SETTINGS, podPorts: [8443] };
    fc.assert(
      fc.property(fc.array(fleet, { minLength: 1, maxLength: 6 }), (fleets) => {
        const memo = new TranslationMemo();
        for (const nodes of fleets) same(nodes, settings, memo);
      }),
      { numRuns: 150 },
    );
  });

  it('joins encoded virtual hosts into exactly what encoding the whole RouteConfiguration writes', () => {
    const nodes: TunnelNode[] = Array.from({ length: 40 }, (_, i) => ({ name: `edge-${i}`, addresses: [`10.1.0.${i + 1}`], kubeletPort: 10250, role: 'edge', labels: {}, podCIDRs: [] }));
    const translation = translate(nodes, DEFAULT_SETTINGS, ['10.96.0.0/12']);
    assert.ok(translation.ok);
    const routes = translation.cloud.get('type.googleapis.com/envoy.config.route.v3.RouteConfiguration')?.get('connect_routes') as Any;
    const reencoded = RouteConfiguration.encode(RouteConfiguration.decode(routes.value)).finish();
    assert.equal(Buffer.compare(Buffer.from(reencoded), Buffer.from(routes.value)), 0);
  });
});
