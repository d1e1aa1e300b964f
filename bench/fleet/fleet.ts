// The whole control path at fleet scale, real parts end to end: Node objects in a real kube-apiserver,
// the xDS server watching them (its own process, mutual TLS on ADS), one synthetic edge proxy per node
// (bench/fleet/synthetic-edges.ts: real gRPC, incremental ADS, a client certificate each) and a real
// cloud Envoy. Measured:
//
// - change → routable: a Node's InternalIP patched in the API until a CONNECT to the new address is
//   routed by the cloud Envoy (503 "no tunnel" instead of 404 "no route": no edge Envoy runs, the
//   routes are what is measured), while changes arrive at a steady rate; every 5th change is timed;
// - bytes per change: what the cloud Envoy and the edges received over xDS during the load, per change;
// - the xDS server's CPU and peak RSS during the load, the cloud Envoy's memory per node;
// - a reconnect storm: the xDS server restarted with every proxy connected, until every edge holds an
//   answered response of each type again and the cloud Envoy is connected.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { bundlePaths, writeBundle } from '../../certs/bundle.js';
import { XDS_CLUSTER } from '../../xds/translate/names.js';
import { freePort, runDir, waitFor } from '../../integration/harness/index.js';
import { KubeCluster } from '../../integration/kube/cluster.js';
import { CLOUD_SERVER_NAME, Topology } from '../../integration/topology.js';
import { connectStatus } from '../cloud-routes.js';
import { processCpuSeconds, processRssBytes } from '../cpu.js';
import { percentile } from '../measure.js';
import { KUBELET_PORT, NodesApi, fleetAddress, fleetNodeName } from './nodes-api.js';
import type { SyntheticEdgesStatus } from './synthetic-edges.js';

export type CloudRoutes = 'inline' | 'vhds';

export interface FleetOptions {
  readonly size: number;
  readonly cloudRoutes: CloudRoutes;
  readonly changesPerSecond: number;
  readonly loadSeconds: number;
  readonly say: (line: string) => void;
}

export interface FleetResult {
  readonly size: number;
  readonly cloudRoutes: CloudRoutes;
  /** From the first synthetic edge dialling (all dial within a few seconds) until every edge is settled. */
  readonly startSeconds: number;
  /** CPU the xDS server spent per edge while they connected (TLS, stream, first responses). */
  readonly xdsCpuMsPerEdge: number;
  readonly changes: number;
  /** Timed changes: ms from the PATCH sent until the new address was routed. */
  readonly routableMs: readonly number[];
  /** Timed changes never routed within the deadline. */
  readonly unroutable: number;
  /** Timed changes whose node changed again before they were routed (with fewer nodes than changes). */
  readonly superseded: number;
  /** Changes the API server did not accept (none expected). */
  readonly failedPatches: number;
  readonly cloudBytesPerChange: number;
  readonly edgeBytesPerChange: number;
  readonly xdsCores: number;
  readonly xdsPeakRssMiB: number;
  /** The cloud Envoy's allocated memory after the load (per node: the difference between fleet sizes). */
  readonly cloudEnvoyAllocatedMiB: number;
  readonly stormSeconds: number;
  /** Of which the restart itself: until the new xDS server answered its health check. */
  readonly stormServerUpSeconds: number;
  readonly stormPeakRssMiB: number;
}

const SAMPLE_EVERY = 5;
const PROBE_INTERVAL_MS = 50;
const ROUTABLE_DEADLINE_MS = 60_000;

/** The new InternalIP of change k (100.64.0.0/10, never a fleet address). */
function changedAddress(k: number): string {
  return `100.${64 + ((k >> 16) & 63)}.${(k >> 8) & 255}.${k & 255}`;
}

async function edgesStatus(port: number): Promise<SyntheticEdgesStatus> {
  const response = await fetch(`http://127.0.0.1:${port}/status`);
  return (await response.json()) as SyntheticEdgesStatus;
}

/** Bytes the cloud Envoy has received from the xDS server. */
async function cloudXdsBytes(topology: Topology): Promise<number> {
  const stats = await topology.cloudAdmin.stats();
  return stats.get(`cluster.${XDS_CLUSTER}.upstream_cx_rx_bytes_total`) ?? NaN;
}

/** Routed by the cloud Envoy: 503 (no tunnel: no edge runs) rather than 404 (no route). */
async function routed(topology: Topology, address: string): Promise<boolean> {
  return (await connectStatus(topology, `${address}:${KUBELET_PORT}`).catch(() => 0)) === 503;
}

/** Samples a process's RSS every second until stopped; the peak. */
function rssPeak(pid: () => number | undefined): { stop: () => number } {
  let peak = 0;
  const sample = (): void => {
    const id = pid();
    peak = Math.max(peak, (id !== undefined ? processRssBytes(id) : undefined) ?? 0);
  };
  sample();
  const timer = setInterval(sample, 1000);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return peak / 1024 / 1024;
    },
  };
}

export async function measureFleet(options: FleetOptions): Promise<FleetResult> {
  const { size, say } = options;
  const dir = join(runDir(), `fleet-${size}-${options.cloudRoutes}`);
  const certs = join(dir, 'certs');
  mkdirSync(dir, { recursive: true });
  await writeBundle({ out: certs, edgeNodes: [], cloudNames: [CLOUD_SERVER_NAME, '127.0.0.1'], xdsNames: ['127.0.0.1'] });
  const paths = bundlePaths(certs);
  // kube-apiserver needs an egress configuration; nothing here dials a node through it.
  const egress = { url: `https://127.0.0.1:${await freePort()}`, caFile: paths.ca, clientCertFile: paths.client, clientKeyFile: paths.clientKey };
  const cluster = await KubeCluster.start({ dir: join(dir, 'kube'), egress });
  const api = new NodesApi(cluster.apiserverUrl, cluster.token);
  let topology: Topology | undefined;
  try {
    const names = Array.from({ length: size }, (_, i) => fleetNodeName(i));
    let started = performance.now();
    await api.create(names, (done) => say(`fleet ${size}: ${done} Nodes created`));
    say(`fleet ${size}: ${size} Nodes in the API in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    started = performance.now();
    topology = await Topology.start({ nodes: [], kubeconfig: cluster.kubeconfig, certsDir: certs, dir: join(dir, 'topology'), serveArgs: ['--cloud-routes', options.cloudRoutes, '--tunnel-probe-interval', '0'] });
    const running = topology;
    const nodesFile = join(dir, 'synthetic-edges.txt');
    writeFileSync(nodesFile, `${names.join('\n')}\n`);
    const statusPort = await freePort();
    await running.processes.start({
      name: 'synthetic-edges',
      command: process.execPath,
      args: ['--import', 'tsx', join(import.meta.dirname, 'synthetic-edges.ts'), '--xds', `127.0.0.1:${running.xdsPort}`, '--certs', certs, '--nodes', nodesFile, '--status-port', String(statusPort)],
    });
    /** Every edge settled, with at least `broken` streams ended so far (0: any). */
    const allSettled = async (broken = 0): Promise<boolean> => {
      const status = await edgesStatus(statusPort).catch(() => undefined);
      if (status?.rejected) throw new Error(`the xDS server refused synthetic edges: ${status.lastError}`);
      return status?.settled === size && status.streamsBroken >= broken;
    };
    await waitFor('the last node routed', () => routed(running, fleetAddress(size - 1)), { timeoutMs: 300_000, intervalMs: 200 });
    say(`fleet ${size}: the cloud Envoy routes every node ${((performance.now() - started) / 1000).toFixed(1)} s after the xDS server started`);
    await waitFor('the synthetic edges\' certificates issued', async () => (await edgesStatus(statusPort).catch(() => undefined))?.issued === size, { timeoutMs: 600_000, intervalMs: 250 });
    const xdsCpuBeforeDial = processCpuSeconds(running.xdsPid ?? 0) ?? NaN;
    await fetch(`http://127.0.0.1:${statusPort}/dial`);
    await waitFor(`${size} synthetic edges settled`, () => allSettled(), { timeoutMs: 900_000, intervalMs: 250 });
    const startSeconds = (Date.now() - (await edgesStatus(statusPort)).dialingSince) / 1000;
    const xdsCpuMsPerEdge = (((processCpuSeconds(running.xdsPid ?? 0) ?? NaN) - xdsCpuBeforeDial) * 1000) / size;
    say(`fleet ${size}: every edge settled ${startSeconds.toFixed(1)} s after the first dialled; the xDS server spent ${xdsCpuMsPerEdge.toFixed(2)} ms of CPU per edge`);

    // The load: changes at a steady rate, each to a node not changed before while nodes last.
    const xdsPid = (): number | undefined => running.xdsPid;
    const before = { cloud: await cloudXdsBytes(running), edges: (await edgesStatus(statusPort)).bytesReceived, cpu: processCpuSeconds(xdsPid() ?? 0) ?? NaN };
    const rss = rssPeak(xdsPid);
    const total = Math.round(options.changesPerSecond * options.loadSeconds);
    const latest = new Map<string, number>();
    const timed: Promise<number | undefined>[] = [];
    const loadStarted = performance.now();
    const patches: Promise<void>[] = [];
    let failedPatches = 0;
    for (let k = 0; k < total; k++) {
      const due = loadStarted + (k * 1000) / options.changesPerSecond;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const name = names[k % size];
      const address = changedAddress(k);
      latest.set(name, k);
      const sent = performance.now();
      patches.push(
        api.readdress(name, address).catch((error: unknown) => {
          failedPatches++;
          say(`fleet ${size}: change ${k} not accepted by the API: ${String(error)}`);
        }),
      );
      if (k % SAMPLE_EVERY !== 0) continue;
      timed.push(
        (async () => {
          while (performance.now() - sent < ROUTABLE_DEADLINE_MS) {
            if (latest.get(name) !== k) return undefined;
            if (await routed(running, address)) return performance.now() - sent;
            await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS));
          }
          return Number.POSITIVE_INFINITY;
        })(),
      );
    }
    await Promise.all(patches);
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    const cpuAfter = processCpuSeconds(xdsPid() ?? 0) ?? NaN;
    const outcomes = await Promise.all(timed);
    const xdsPeakRssMiB = rss.stop();
    // What the changes caused has all arrived once nothing more comes in for a second.
    const received = async (): Promise<{ cloud: number; edges: number }> => ({ cloud: await cloudXdsBytes(running), edges: (await edgesStatus(statusPort)).bytesReceived });
    let after = await received();
    await waitFor('the xDS traffic quiet after the load', async () => {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const now = await received();
      const quiet = now.cloud === after.cloud && now.edges === after.edges;
      after = now;
      return quiet;
    }, { timeoutMs: 120_000, intervalMs: 0 });
    const memory = JSON.parse((await running.cloudAdmin.get('/memory')).body) as { allocated: string };
    const routableMs = outcomes.filter((v): v is number => v !== undefined && Number.isFinite(v));
    say(`fleet ${size}: ${total} changes in ${loadSeconds.toFixed(1)} s, p99 change → routable ${percentile(routableMs, 99).toFixed(0)} ms`);

    // The storm: every proxy reconnects to a restarted xDS server at once.
    const brokenBefore = (await edgesStatus(statusPort)).streamsBroken;
    const stormStarted = performance.now();
    const stormRss = rssPeak(xdsPid);
    await running.restartXds();
    const stormServerUpSeconds = (performance.now() - stormStarted) / 1000;
    // Settled again, and on new streams: every edge saw its old one end.
    await waitFor('every edge settled again after the restart', () => allSettled(brokenBefore + size), { timeoutMs: 600_000, intervalMs: 250 });
    await waitFor('the cloud Envoy connected again', async () => (await running.cloudAdmin.stats()).get('control_plane.connected_state') === 1, { timeoutMs: 120_000, intervalMs: 250 });
    const stormSeconds = (performance.now() - stormStarted) / 1000;
    const stormPeakRssMiB = stormRss.stop();
    say(`fleet ${size}: reconnect storm settled in ${stormSeconds.toFixed(1)} s`);

    return {
      size,
      cloudRoutes: options.cloudRoutes,
      startSeconds,
      xdsCpuMsPerEdge,
      changes: total,
      routableMs,
      unroutable: outcomes.filter((v) => v === Number.POSITIVE_INFINITY).length,
      superseded: outcomes.filter((v) => v === undefined).length,
      failedPatches,
      cloudBytesPerChange: (after.cloud - before.cloud) / total,
      edgeBytesPerChange: (after.edges - before.edges) / total,
      xdsCores: (cpuAfter - before.cpu) / loadSeconds,
      xdsPeakRssMiB,
      cloudEnvoyAllocatedMiB: Number(memory.allocated) / 1024 / 1024,
      stormSeconds,
      stormServerUpSeconds,
      stormPeakRssMiB,
    };
  } catch (error) {
    process.stderr.write(cluster.processes.describeFailure());
    if (topology) process.stderr.write(topology.processes.describeFailure());
    throw error;
  } finally {
    api.close();
    await topology?.stop();
    await cluster.stop();
  }
}

const TARGETS = { p99Ms: 1000, bytesRatio: 2, cores: 1, rssMiB: 1536, stormSeconds: 60 } as const;

function verdict(value: number, limit: number, unit: string, digits = 0): string {
  if (!Number.isFinite(value)) return 'not measured';
  return value < limit ? `met (${value.toFixed(digits)} ${unit})` : `**missed** by ${(value / limit).toFixed(2)}× (${value.toFixed(digits)} ${unit} against < ${limit} ${unit})`;
}

/** The results as markdown: a row per run and, for the largest fleet, each target met or missed. */
export function fleetReport(results: readonly FleetResult[]): string {
  const byMode = (mode: CloudRoutes, size: number): FleetResult | undefined => results.find((r) => r.cloudRoutes === mode && r.size === size);
  const smallest = Math.min(...results.map((r) => r.size));
  const bytes = (r: FleetResult): number => r.cloudBytesPerChange + r.edgeBytesPerChange;
  const rows = results.map((r) => {
    const base = byMode(r.cloudRoutes, smallest);
    const ratio = base && r !== base ? ` (${(bytes(r) / bytes(base)).toFixed(1)}×)` : '';
    // Per node: what the larger fleet adds over the smallest, so Envoy's own baseline does not count.
    const perNode = base && r !== base ? `${(((r.cloudEnvoyAllocatedMiB - base.cloudEnvoyAllocatedMiB) * 1024) / (r.size - base.size)).toFixed(1)}` : '–';
    const oddities = [r.unroutable && `${r.unroutable} never routed`, r.superseded && `${r.superseded} superseded`, r.failedPatches && `${r.failedPatches} refused by the API`].filter(Boolean);
    return (
      `| ${r.size} | ${r.cloudRoutes} | ${r.startSeconds.toFixed(1)} | ${r.xdsCpuMsPerEdge.toFixed(1)} | ${percentile(r.routableMs, 50).toFixed(0)} / ${percentile(r.routableMs, 99).toFixed(0)}` +
      ` (${r.routableMs.length} timed${oddities.length > 0 ? `; ${oddities.join(', ')}` : ''}) | ${(r.cloudBytesPerChange / 1024).toFixed(1)} + ${(r.edgeBytesPerChange / 1024).toFixed(1)}${ratio} | ` +
      `${r.xdsCores.toFixed(2)} | ${r.xdsPeakRssMiB.toFixed(0)} | ${r.cloudEnvoyAllocatedMiB.toFixed(0)} | ${perNode} | ${r.stormSeconds.toFixed(1)} (${r.stormServerUpSeconds.toFixed(1)}) | ${r.stormPeakRssMiB.toFixed(0)} |`
    );
  });
  const largest = Math.max(...results.map((r) => r.size));
  const atLargest = results.filter((r) => r.size === largest);
  const targets = atLargest.map((r) => {
    const base = byMode(r.cloudRoutes, smallest);
    return (
      `- ${r.size} nodes, ${r.cloudRoutes}: change → routable p99 ${verdict(percentile(r.routableMs, 99), TARGETS.p99Ms, 'ms')}; ` +
      `bytes per change ${base ? verdict(bytes(r) / bytes(base), TARGETS.bytesRatio, '× those at ' + String(smallest), 1) : 'not measured'}; ` +
      `xDS CPU ${verdict(r.xdsCores, TARGETS.cores, 'cores', 2)}; xDS RSS ${verdict(Math.max(r.xdsPeakRssMiB, r.stormPeakRssMiB), TARGETS.rssMiB, 'MiB')}; ` +
      `reconnect storm ${verdict(r.stormSeconds, TARGETS.stormSeconds, 's', 1)}.`
    );
  });
  // Why a target is missed, for the misses this run saw (the causes as measured and read in Envoy 1.40).
  const missed = (test: (r: FleetResult) => boolean): boolean => atLargest.some(test);
  const why = [
    missed((r) => percentile(r.routableMs, 99) >= TARGETS.p99Ms) &&
      '- Why the p99 is missed: the cloud Envoy rebuilds its whole route table on every update, RDS or VHDS alike ' +
        '(the cloud-routes table above: about half a second at 10,000 nodes), and a change that arrives while one ' +
        'update is being applied waits for it and then for its own: two rebuilds, longer while the 2 cores are shared.',
    missed((r) => r.cloudRoutes === 'inline' && bytes(r) / bytes(byMode('inline', smallest) ?? r) >= TARGETS.bytesRatio) &&
      '- Why inline misses the bytes: its one RouteConfiguration holds every node and is resent whole on a change; ' +
        'VHDS sends the changed virtual hosts alone.',
    missed((r) => r.stormSeconds >= TARGETS.stormSeconds || r.startSeconds >= TARGETS.stormSeconds) &&
      '- Why the storm takes about a minute: it is CPU-bound here. The xDS server spends the CPU per connecting edge ' +
        'in the table (TLS handshake, stream, first responses), and the synthetic edges\' own handshakes ' +
        'run on the same 2 cores; the restart itself (column in brackets) adds the backoff the proxies grew meanwhile.',
    missed((r) => Math.max(r.xdsPeakRssMiB, r.stormPeakRssMiB) >= TARGETS.rssMiB) &&
      '- Why the RSS is at the limit: most of it is per-connection TLS and HTTP/2 state outside the JavaScript heap ' +
        '(about 90 KiB per connected proxy); two replicas halve it.',
  ].filter((line): line is string => typeof line === 'string');
  return [
    '| edge nodes | cloud routes | edges dialling → all settled (s) | xDS CPU per connecting edge (ms) | change → routable p50 / p99 (ms) | KiB per change: cloud + edges (vs fewest nodes) | xDS CPU (cores) | xDS peak RSS (MiB) | cloud Envoy allocated (MiB) | cloud Envoy KiB per node (beyond the smallest fleet) | reconnect storm (s; of which restart) | xDS peak RSS in the storm (MiB) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    ...targets,
    ...why,
  ].join('\n');
}

/** `make bench`'s fleet section: 100 and 10,000 nodes, each way of sending the cloud's routes. */
export async function measureFleetScale(say: (line: string) => void, sizes: readonly number[] = [100, 10_000]): Promise<string> {
  const results: FleetResult[] = [];
  for (const cloudRoutes of ['inline', 'vhds'] as const) {
    for (const size of sizes) {
      say(`fleet: ${size} nodes, cloud routes ${cloudRoutes} …`);
      results.push(await measureFleet({ size, cloudRoutes, changesPerSecond: 50, loadSeconds: 30, say }));
    }
  }
  return fleetReport(results);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [size = '10000', cloudRoutes = 'inline', rate = '50', seconds = '30'] = process.argv.slice(2);
  if (cloudRoutes !== 'inline' && cloudRoutes !== 'vhds') throw new Error(`usage: fleet.ts [SIZE] [inline|vhds] [CHANGES_PER_S] [SECONDS]; not "${cloudRoutes}"`);
  measureFleet({ size: Number(size), cloudRoutes, changesPerSecond: Number(rate), loadSeconds: Number(seconds), say: (line) => process.stderr.write(`${line}\n`) }).then(
    (result) => process.stdout.write(`${JSON.stringify(result, (key, value: unknown) => (key === 'routableMs' ? undefined : value), 2)}\np50 ${percentile(result.routableMs, 50)} p99 ${percentile(result.routableMs, 99)}\n`),
    (error: unknown) => {
      process.stderr.write(`fleet bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
}
