// Control-plane cost at fleet scale, measured in-process: translating N nodes, publishing them into the
// snapshot cache, and what one node's change costs afterwards (time, and which proxies' resources
// change). Prints a Markdown table; `make bench` writes it into bench/results.md.

import { performance } from 'node:perf_hooks';
import { SnapshotCache, CLOUD_KEY } from '../xds/cache/snapshot-cache.js';
import type { TunnelNode } from '../xds/model/node.js';
import { DEFAULT_SETTINGS } from '../xds/model/settings.js';
import { TranslationMemo } from '../xds/translate/memo.js';
import { translate } from '../xds/translate/translate.js';
import { XdsType } from '../envoy/xds-types.js';

function fleet(size: number, changed?: number): TunnelNode[] {
  return Array.from({ length: size }, (_, i) => ({
    name: `edge-${String(i).padStart(5, '0')}`,
    addresses: [`10.${Math.floor(i / 65536) % 256}.${Math.floor(i / 256) % 256}.${i % 256}`, i === changed ? '192.0.2.99' : `edge-${i}.example`],
    kubeletPort: 10250,
    role: 'edge' as const,
    labels: {},
    podCIDRs: [],
  }));
}

function timed<T>(fn: () => T): { value: T; ms: number } {
  const start = performance.now();
  const value = fn();
  return { value, ms: performance.now() - start };
}

/** The median of `runs` timings of `fn` (after one warm-up run). */
function median(runs: number, fn: (run: number) => void): number {
  fn(-1);
  const times = Array.from({ length: runs }, (_, run) => timed(() => fn(run)).ms).sort((a, b) => a - b);
  return times[Math.floor(runs / 2)];
}

export function measureControlPlane(sizes: readonly number[] = [1000, 10_000]): string {
  const rows = sizes.map((size) => {
    const cache = new SnapshotCache();
    const memo = new TranslationMemo();
    const first = timed(() => translate(fleet(size), DEFAULT_SETTINGS, [], memo));
    if (!first.value.ok) throw new Error('translation failed');
    const translation = first.value;
    const publish = timed(() => cache.publish(translation));
    const routeBytes = cache.current(CLOUD_KEY, XdsType.route).resources.get('connect_routes')?.any.value.length ?? 0;
    // One node changes back and forth, as the control plane sees it: with its memo, and without one.
    let changedEdges = 0;
    const change = (withMemo: boolean) => (run: number) => {
      const next = translate(fleet(size, run % 2 === 0 ? 7 : undefined), DEFAULT_SETTINGS, [], withMemo ? memo : undefined);
      if (!next.ok) throw new Error('translation failed');
      changedEdges = [...cache.publish(next).changed.keys()].filter((k) => k !== CLOUD_KEY).length;
    };
    const incremental = median(5, change(true));
    const whole = median(3, change(false));
    return `| ${size} | ${first.ms.toFixed(0)} | ${publish.ms.toFixed(0)} | ${incremental.toFixed(0)} | ${whole.toFixed(0)} | ${changedEdges} | ${(routeBytes / 1024).toFixed(0)} |`;
  });
  return [
    '| edge nodes | translate all (ms) | first publish (ms) | one node changed: translate + publish (ms, median) | the same without the memo (ms) | edge proxies sent anything | cloud RouteConfiguration (KiB, resent whole to cloud proxies) |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${measureControlPlane()}\n`);
}
