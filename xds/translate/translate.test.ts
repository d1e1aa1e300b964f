// Golden tests: each testdata/<case>.in.yaml (settings overrides, a nodes file, optionally the Service
// CIDRs the cluster reports and Node creation times) is translated and rendered; the result must equal
// testdata/<case>.out.yaml. UPDATE_GOLDEN=1 rewrites the outputs and deletes outputs whose input is gone.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { toYaml } from '../../envoy/render.js';
import { formatInputError, type TunnelNode } from '../model/node.js';
import { DEFAULT_SETTINGS, type Settings } from '../model/settings.js';
import { parseNodesFile } from '../sources/nodes-file.js';
import { resourceSetToJson } from './render.js';
import { translate } from './translate.js';

const dir = join(import.meta.dirname, 'testdata');
const update = process.env.UPDATE_GOLDEN === '1';

function render(inputText: string, fileName: string): string {
  const input = parse(inputText) as {
    settings?: Partial<Settings>;
    nodes?: unknown;
    serviceCIDRs?: string[];
    createdAt?: Record<string, string>;
    /** Render the sidecars' resources too (the same for every case, so shown in one). */
    sidecar?: boolean;
  };
  const parsed = parseNodesFile(stringify({ nodes: input.nodes ?? [] }), fileName);
  const nodes = parsed.nodes.map((node) => (input.createdAt?.[node.name] ? { ...node, createdAt: input.createdAt[node.name] } : node));
  const translation = translate(nodes, { ...DEFAULT_SETTINGS, ...input.settings }, input.serviceCIDRs);
  const errors = [...(parsed.fatal ? [parsed.fatal] : []), ...[...parsed.errors, ...translation.errors].map(formatInputError)];
  if (!translation.ok) return toYaml({ errors });
  const edges = Object.fromEntries([...translation.edges].map(([node, set]) => [node, resourceSetToJson(set)]));
  const sidecar = input.sidecar ? { sidecar: resourceSetToJson(translation.sidecar) } : {};
  return toYaml({ errors, cloud: resourceSetToJson(translation.cloud), edges, ...sidecar });
}

describe('translator golden files', () => {
  const inputs = readdirSync(dir).filter((f) => f.endsWith('.in.yaml')).sort();
  if (update) {
    for (const stale of readdirSync(dir).filter((f) => f.endsWith('.out.yaml'))) {
      if (!inputs.includes(stale.replace('.out.yaml', '.in.yaml'))) rmSync(join(dir, stale));
    }
  }
  for (const input of inputs) {
    it(input.replace('.in.yaml', ''), () => {
      const actual = render(readFileSync(join(dir, input), 'utf8'), input);
      const outPath = join(dir, input.replace('.in.yaml', '.out.yaml'));
      if (update) writeFileSync(outPath, actual);
      assert.ok(existsSync(outPath), `${outPath} is missing: run UPDATE_GOLDEN=1 make unit and review it`);
      assert.equal(actual, readFileSync(outPath, 'utf8'));
    });
  }
});

describe('translator', () => {
  it('gives byte-identical resources whatever order the nodes come in', () => {
    const nodes = parseNodesFile(
      'nodes:\n- {name: node-b, addresses: [10.0.0.2]}\n- {name: node-a, addresses: [10.0.0.1]}\n',
      'n.yaml',
    ).nodes;
    const a = translate(nodes, DEFAULT_SETTINGS);
    const b = translate([...nodes].reverse(), DEFAULT_SETTINGS);
    assert.ok(a.ok && b.ok);
    assert.equal(toYaml(resourceSetToJson(a.cloud)), toYaml(resourceSetToJson(b.cloud)));
  });

  it('lets the older of two nodes keep a contested address, whatever the order or names', () => {
    const node = (name: string, createdAt: string): TunnelNode => ({ name, createdAt, addresses: ['192.0.2.11'], kubeletPort: 10250, role: 'edge', labels: {}, podCIDRs: [] });
    for (const [older, newer] of [['edge-a', 'edge-b'], ['edge-b', 'edge-a']]) {
      const nodes = [node(older, '2026-01-01T00:00:00Z'), node(newer, '2026-02-01T00:00:00Z')];
      for (const order of [nodes, [...nodes].reverse()]) {
        const result = translate(order, DEFAULT_SETTINGS);
        assert.ok(result.ok);
        assert.deepEqual(result.errors.map((e) => e.path), [`${newer}.addresses[0]`]);
        assert.match(result.errors[0]?.message ?? '', new RegExp(`held by ${older}, which claimed it first`));
      }
    }
  });

  it('translates nothing when the settings are invalid, and says which', () => {
    const result = translate([], { ...DEFAULT_SETTINGS, tunnelsPerCloud: 0, connectListen: { address: '127.0.0.1', port: 70000 } });
    assert.equal(result.ok, false);
    assert.deepEqual(result.errors.map((e) => e.path), ['settings.connectListen.port', 'settings.tunnelsPerCloud']);
  });
});
