// How the cloud's CONNECT routes reach a real cloud Envoy at fleet scale, the two ways the xDS server
// can send them (`xds serve --cloud-routes`): inline (one RouteConfiguration with every node, resent
// whole) and vhds (one VirtualHost per node over incremental ADS). For each: the cloud Envoy's memory per
// node, and how long a node added to the nodes file takes to become routable at the cloud Envoy (a
// CONNECT to its new address turns from 404, not routed, into 503, routed but no tunnel: no edge runs
// here, the routes are what is measured). Run: `npx tsx bench/cloud-routes.ts [sizes…]`.

import { performance } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { waitFor } from '../integration/harness/index.js';
import { Topology } from '../integration/topology.js';

type Mode = 'inline' | 'vhds';

function fleet(size: number): Record<string, unknown>[] {
  return Array.from({ length: size }, (_, i) => ({ name: `edge-${i}`, addresses: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`], kubeletPort: 10250 }));
}

/** The status a CONNECT to `target` gets from the cloud Envoy. */
export async function connectStatus(topology: Topology, target: string): Promise<number> {
  const result = await topology.connect(target);
  result.socket.destroy();
  return result.status;
}

async function measure(size: number, mode: Mode, changes: number): Promise<{ startS: number; changeMs: number[]; memoryMiB: number }> {
  const nodes = fleet(size);
  const started = performance.now();
  const topology = await Topology.start({ nodes: [], extraNodes: nodes, serveArgs: ['--cloud-routes', mode] });
  try {
    await waitFor(`${size} nodes routed (${mode})`, async () => (await connectStatus(topology, `edge-${size - 1}:10250`)) === 503, { timeoutMs: 300_000, intervalMs: 200 });
    const startS = (performance.now() - started) / 1000;
    const changeMs: number[] = [];
    for (let k = 0; k < changes; k++) {
      const address = `192.0.2.${10 + k}`;
      nodes.push({ name: `added-${k}`, addresses: [address], kubeletPort: 10250 });
      const written = performance.now();
      writeFileSync(topology.nodesFile, stringify({ nodes }));
      await waitFor(`added-${k} routed`, async () => (await connectStatus(topology, `${address}:10250`)) === 503, { timeoutMs: 120_000, intervalMs: 5 });
      changeMs.push(performance.now() - written);
    }
    const memory = JSON.parse((await topology.cloudAdmin.get('/memory')).body) as { allocated: string };
    return { startS, changeMs, memoryMiB: Number(memory.allocated) / 1024 / 1024 };
  } finally {
    await topology.stop();
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export async function measureCloudRoutes(sizes: readonly number[] = [10_000], changes = 5, say: (line: string) => void = () => undefined): Promise<string> {
  const rows: string[] = [];
  for (const size of sizes) {
    const results = new Map<Mode, Awaited<ReturnType<typeof measure>>>();
    for (const mode of ['inline', 'vhds'] as const) {
      say(`cloud routes: ${size} nodes, ${mode} …`);
      results.set(mode, await measure(size, mode, changes));
    }
    const inline = results.get('inline');
    const vhds = results.get('vhds');
    if (!inline || !vhds) continue;
    const row = (mode: Mode, r: typeof inline): string =>
      `| ${size} | ${mode} | ${r.startS.toFixed(1)} | ${median(r.changeMs).toFixed(0)} | ${Math.max(...r.changeMs).toFixed(0)} | ${((r.memoryMiB * 1024) / size).toFixed(1)} |`;
    rows.push(row('inline', inline), row('vhds', vhds));
    rows.push(`| ${size} | vhds ÷ inline | | ${(median(vhds.changeMs) / median(inline.changeMs)).toFixed(2)} | | ${(vhds.memoryMiB / inline.memoryMiB).toFixed(2)} |`);
  }
  return [
    `| edge nodes | cloud routes | start to all routed (s) | node added → routable, median of ${changes} (ms) | slowest (ms) | cloud Envoy memory per node (KiB) |`,
    '|---:|---|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
  measureCloudRoutes(sizes.length > 0 ? sizes : [10_000], 5, (line) => process.stderr.write(`${line}\n`)).then(
    (table) => process.stdout.write(`${table}\n`),
    (error: unknown) => {
      process.stderr.write(`cloud-routes bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
}
