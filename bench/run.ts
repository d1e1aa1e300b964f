// `make bench`: edge-tunnel (as shipped, and with Envoy terminating CONNECT itself as 1.40 ships it),
// Konnectivity and a direct connection side by side on loopback, written to bench/results.md. Measures and
// reports; never judges (no thresholds), and is not part of `make test`.
//
//   node --import tsx bench/run.ts [--size-mib N] [--repetitions N] [--requests N] [--established N]
//                                  [--close-tries N] [--stalled N] [--out FILE]

import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { ProcessSet, envoyBinary, runDir } from '../integration/harness/index.js';
import { Topology } from '../integration/topology.js';
import { LoadWindow, type BackgroundLoad } from './cpu.js';
import { konnectivityBinary, startKonnectivity, type Konnectivity } from './konnectivity/konnectivity.js';
import {
  download,
  establishedExchanges,
  freshExchange,
  percentile,
  serverClosedDownloads,
  stalledStreams,
  upload,
  type ServerCloseResult,
  type StallResult,
  type Transfer,
} from './measure.js';
import { describeEdgeTunnel, directPath, edgeTunnelPath, konnectivityPath, startBenchTarget, type BenchPath } from './paths.js';
import { PATH_KEYS, machineInfo, renderResults, type BenchOptions, type PerPath, type Results } from './report.js';

const ROOT = join(import.meta.dirname, '..');
const NODE = 'node-a';
const HELP = `usage: node --import tsx bench/run.ts [options]   (make bench runs it with the defaults)

  --size-mib N      bulk transfer size (default 256)
  --repetitions N   bulk transfers per direction and path; the median is reported (default 3)
  --requests N      fresh CONNECT + TLS + 1 KiB exchanges per path (default 300)
  --established N   1 KiB request/response exchanges per path on one open connection (default 1000)
  --close-tries N   64 MiB downloads per path that the target ends by closing (default 10)
  --stalled N       clients that ask for 64 MiB and stop reading, per path, for memory (default 20)
  --out FILE        where the results go (default bench/results.md)
`;

const say = (line: string): void => void process.stdout.write(`bench: ${line}\n`);

function positive(name: string, value: string, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name}: "${value}" is not an integer in [1, ${max}]`);
  return n;
}

function parseOptions(): { options: BenchOptions; out: string } | undefined {
  const { values } = parseArgs({
    options: {
      'size-mib': { type: 'string', default: '256' },
      repetitions: { type: 'string', default: '3' },
      requests: { type: 'string', default: '300' },
      established: { type: 'string', default: '1000' },
      'close-tries': { type: 'string', default: '10' },
      stalled: { type: 'string', default: '20' },
      out: { type: 'string', default: join(ROOT, 'bench', 'results.md') },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return undefined;
  }
  // Bounded: the largest run still ends in minutes, and the kubelet serves at most 4 GiB per request.
  return {
    options: {
      sizeMiB: positive('size-mib', values['size-mib'], 1024),
      repetitions: positive('repetitions', values.repetitions, 9),
      freshRequests: positive('requests', values.requests, 5000),
      freshWarmup: 30,
      establishedRequests: positive('established', values.established, 20_000),
      establishedWarmup: 50,
      serverCloseTries: positive('close-tries', values['close-tries'], 100),
      serverCloseSizeMiB: 64,
      stalledStreams: positive('stalled', values.stalled, 200),
      stalledSizeMiB: 64,
    },
    out: values.out,
  };
}

function theCommand(): string {
  if (process.env.MAKELEVEL !== undefined && process.argv.length === 2) return 'make bench';
  return ['node --import tsx', relative(process.cwd(), process.argv[1] ?? 'bench/run.ts'), ...process.argv.slice(2)].join(' ');
}

const emptyPerPath = <T>(make: () => T): PerPath<T> => ({ direct: make(), edgeTunnel: make(), stock: make(), konnectivity: make() });
const rate = (t: Transfer): string => `${(t.bytes / 2 ** 20 / t.seconds).toFixed(0)} MiB/s`;

async function main(): Promise<void> {
  const parsed = parseOptions();
  if (parsed === undefined) return;
  const { options, out } = parsed;
  const started = new Date();
  // Fail before starting anything when a binary is missing.
  envoyBinary();
  konnectivityBinary('konnectivity-server');
  konnectivityBinary('konnectivity-agent');
  const machine = machineInfo();
  say(`${machine.cpuModel}, ${machine.cores} cores; Node ${machine.node}, Envoy ${machine.envoy}, Konnectivity ${machine.konnectivity}`);
  say(`logs of every process: ${runDir()}`);

  // In-process and before any proxy runs, so that nothing else competes with it.
  say('control plane at fleet scale (bench/control-plane.ts: translate and publish 1,000 and 10,000 nodes) …');
  const controlPlane = await table('control plane', async () => (await import('./control-plane.js')).measureControlPlane());
  say('cloud routes at fleet scale with a real cloud Envoy (bench/cloud-routes.ts: 10,000 and 50,000 nodes, inline and VHDS) …');
  const cloudRoutes = await table('cloud routes', async () => (await import('./cloud-routes.js')).measureCloudRoutes([10_000, 50_000], 5, say));
  say('the whole control path at fleet scale (bench/fleet/fleet.ts: kube-apiserver, xDS server, synthetic edges, cloud Envoy; 100 and 10,000 nodes) …');
  const fleet = await table('fleet', async () => (await import('./fleet/fleet.js')).measureFleetScale(say));

  const processes = new ProcessSet();
  let topology: Topology | undefined;
  let stock: Topology | undefined;
  let konnectivity: Konnectivity | undefined;
  const allPids = (): number[] => [...processes.handles, ...(topology?.processes.handles ?? []), ...(stock?.processes.handles ?? [])].map((h) => h.pid);
  try {
    say('starting the byte target (its own process) …');
    const target = await startBenchTarget(processes);
    say(`byte target on 127.0.0.1:${target.port}`);

    say('starting edge-tunnel: xDS server, cloud Envoy, edge Envoy, connect-terminator (mutual TLS everywhere) …');
    const serveArgs = ['--allowed-ports', String(target.port)];
    topology = await Topology.start({ nodes: [NODE], serveArgs });
    await topology.waitReachable(NODE, 30_000, topology.addressOf(NODE));
    say('starting a second edge-tunnel whose edge Envoy terminates CONNECT itself (Envoy 1.40 as shipped) …');
    stock = await Topology.start({ nodes: [NODE], serveArgs, edgeConnectTermination: 'envoy' });
    await stock.waitReachable(NODE, 30_000, stock.addressOf(NODE));

    say('starting Konnectivity: konnectivity-server (http-connect, mutual TLS) and one konnectivity-agent …');
    konnectivity = await startKonnectivity(processes, { dir: runDir(), agentIdentifiers: 'ipv4=127.0.0.1' });
    const k = konnectivity;

    const paths: PerPath<BenchPath> = {
      direct: directPath(target.port),
      edgeTunnel: edgeTunnelPath('edgeTunnel', topology, NODE, target.port),
      stock: edgeTunnelPath('stock', stock, NODE, target.port),
      konnectivity: konnectivityPath(k.frontendPort, k.clientTls, target.port, () => [
        { role: 'konnectivity-server', pid: k.server.pid },
        { role: 'konnectivity-agent', pid: k.agent.pid },
      ]),
    };
    for (const key of PATH_KEYS) await freshExchange(paths[key]);
    say('every path reaches the byte target');

    const setup: PerPath<string> = {
      direct: 'TCP to the byte target.',
      edgeTunnel:
        `CONNECT \`${topology.addressOf(NODE)}:${target.port}\` (the node's address, as kube-apiserver sends it) with mutual TLS to the ` +
        'cloud Envoy\'s CONNECT listener, routed by the xDS server\'s configuration down a reverse tunnel (HTTP/2, mutual TLS) ' +
        `to the edge Envoy. Read from the Envoys' admin endpoints: ${await describeEdgeTunnel(topology, NODE)}.`,
      stock: `The same with \`xds serve --edge-connect-termination envoy\` and no upstream half-close at the edge: ${await describeEdgeTunnel(stock, NODE)} (the lossy stock shape, for comparison).`,
      konnectivity: `CONNECT \`127.0.0.1:${target.port}\` to ${k.description}.`,
    };

    // --- latency: fresh connections -------------------------------------------------------------------
    const fresh = emptyPerPath<number[]>(() => []);
    const resumed = emptyPerPath<number[]>(() => []);
    say(`fresh CONNECT + TLS + 1 KiB, full and resumed TLS handshakes: ${options.freshWarmup} warm-up, then ${options.freshRequests} each per path …`);
    for (const key of PATH_KEYS) for (let i = 0; i < options.freshWarmup; i++) await freshExchange(paths[key], i % 2 === 1);
    let window = new LoadWindow(allPids);
    for (let done = 0; done < options.freshRequests; ) {
      const round = Math.min(50, options.freshRequests - done);
      for (const key of PATH_KEYS) {
        for (let i = 0; i < round; i++) {
          fresh[key].push(await freshExchange(paths[key]));
          resumed[key].push(await freshExchange(paths[key], true));
        }
      }
      done += round;
    }
    const freshLoad = window.end();
    for (const key of PATH_KEYS) say(`  ${paths[key].name}: full handshake p50 ${percentileText(fresh[key])}; resumed p50 ${percentileText(resumed[key])}`);

    // --- latency: an open connection -------------------------------------------------------------------
    say(`1 KiB request/response on an open connection: ${options.establishedRequests} per path …`);
    const established = emptyPerPath<number[]>(() => []);
    window = new LoadWindow(allPids);
    for (const key of PATH_KEYS) {
      established[key] = await establishedExchanges(paths[key], options.establishedWarmup, options.establishedRequests);
      say(`  ${paths[key].name}: p50 ${percentileText(established[key])}`);
    }
    const establishedLoad = window.end();

    // --- throughput -----------------------------------------------------------------------------------
    const size = options.sizeMiB * 2 ** 20;
    say(`bulk throughput: ${options.sizeMiB} MiB each way, ${options.repetitions} repetitions per path (every byte checked) …`);
    // Generous bounds: 256 MiB at 10 MiB/s still fits; anything slower is broken, not slow.
    const timeoutMs = Math.max(60_000, (size / (10 * 2 ** 20)) * 1000);
    for (const key of PATH_KEYS) {
      await download(paths[key], 16 * 2 ** 20, timeoutMs);
      await upload(paths[key], 16 * 2 ** 20, timeoutMs);
    }
    const downloads = emptyPerPath<Transfer[]>(() => []);
    const uploads = emptyPerPath<Transfer[]>(() => []);
    window = new LoadWindow(allPids);
    for (let rep = 1; rep <= options.repetitions; rep++) {
      for (const key of PATH_KEYS) {
        const d = await download(paths[key], size, timeoutMs);
        const u = await upload(paths[key], size, timeoutMs);
        downloads[key].push(d);
        uploads[key].push(u);
        say(`  repetition ${rep}/${options.repetitions} ${paths[key].name}: download ${rate(d)}, upload ${rate(u)}`);
      }
    }
    const throughputLoad = window.end();

    // --- downloads the target ends by closing its connection ----------------------------------------
    const closeSize = options.serverCloseSizeMiB * 2 ** 20;
    say(`downloads ended by the target closing: ${options.serverCloseTries} × ${options.serverCloseSizeMiB} MiB per path …`);
    const serverClose = emptyPerPath<ServerCloseResult | undefined>(() => undefined);
    for (const key of PATH_KEYS) {
      const result = await serverClosedDownloads(paths[key], closeSize, options.serverCloseTries, timeoutMs);
      const failed = [...result.failures].map(([why, n]) => `${n}× ${why}`).join(', ');
      say(`  ${paths[key].name}: ${result.complete}/${result.tries} complete${failed === '' ? '' : ` (${failed})`}`);
      serverClose[key] = result;
    }

    // --- memory: clients that stop reading -------------------------------------------------------------
    say(`memory: ${options.stalledStreams} clients per path ask for ${options.stalledSizeMiB} MiB each and stop reading …`);
    const stalled = emptyPerPath<StallResult | undefined>(() => undefined);
    for (const key of PATH_KEYS) {
      if (key === 'direct') continue;
      stalled[key] = await stalledStreams(paths[key], options.stalledStreams, options.stalledSizeMiB * 2 ** 20);
      say(`  ${paths[key].name}: ${[...(stalled[key]?.rssPerStream ?? [])].map(([role, b]) => `${role} ${(b / 2 ** 20).toFixed(2)} MiB`).join(', ')} per stream`);
    }

    const results: Results = {
      command: theCommand(),
      started,
      finished: new Date(),
      machine,
      options,
      setup,
      download: downloads,
      upload: uploads,
      fresh,
      resumed,
      established,
      serverClose: serverClose as PerPath<ServerCloseResult>,
      stalled,
      controlPlane,
      cloudRoutes,
      fleet,
      load: { fresh: freshLoad, established: establishedLoad, throughput: throughputLoad },
      loadAverageAtEnd: os.loadavg(),
    };
    writeFileSync(out, renderResults(results));
    say(`wrote ${relative(process.cwd(), out)}`);
    reportLoad('fresh latency', freshLoad);
    reportLoad('established latency', establishedLoad);
    reportLoad('throughput', throughputLoad);
  } catch (error) {
    process.stderr.write(`\nbench: FAILED: ${(error as Error).stack ?? String(error)}\n\n--- process logs ---\n`);
    process.stderr.write(`${processes.describeFailure(30)}\n${topology?.processes.describeFailure(30) ?? ''}\n${stock?.processes.describeFailure(30) ?? ''}\n`);
    process.exitCode = 1;
  } finally {
    say('stopping every process …');
    const stopped = await Promise.allSettled([processes.stopAll(), topology?.stop(), stock?.stop()]);
    for (const result of stopped) {
      if (result.status === 'rejected') {
        process.stderr.write(`bench: could not stop every process: ${String(result.reason)}\n`);
        process.exitCode = 1;
      }
    }
  }
}

/** A table measured in-process, or why it could not be (the data-plane results still count). */
async function table(what: string, measure: () => Promise<string> | string): Promise<string> {
  try {
    return await measure();
  } catch (error) {
    const why = `not measured: ${(error as Error).message}`;
    say(`${what} ${why}`);
    return why;
  }
}

function percentileText(samples: readonly number[]): string {
  return `${percentile(samples, 50).toFixed(2)} ms, p99 ${percentile(samples, 99).toFixed(2)} ms`;
}

function reportLoad(what: string, load: BackgroundLoad | undefined): void {
  if (load !== undefined && load.otherCores >= 0.25) {
    say(`note: other processes used ${load.otherCores.toFixed(2)} cores on average during the ${what} measurement: noisy`);
  }
}

await main();
