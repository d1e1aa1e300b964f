// Turns the measurements into bench/results.md: the machine, what competed for it, one table per
// measurement with absolute numbers and ratios, and how it was all measured.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { envoyBinary } from '../integration/harness/index.js';
import type { BackgroundLoad } from './cpu.js';
import { konnectivityVersion } from './konnectivity/konnectivity.js';
import { median, percentile, type ServerCloseResult, type StallResult, type Transfer } from './measure.js';
import type { PathKey } from './paths.js';

export const PATH_KEYS: readonly PathKey[] = ['direct', 'edgeTunnel', 'stock', 'konnectivity'];
const PATH_NAMES: Record<PathKey, string> = {
  direct: 'direct',
  edgeTunnel: 'edge-tunnel',
  stock: 'edge-tunnel, Envoy terminating',
  konnectivity: 'Konnectivity',
};
const PROXIED: readonly PathKey[] = ['edgeTunnel', 'stock', 'konnectivity'];

export interface MachineInfo {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly envoy: string;
  readonly konnectivity: string;
  /** The edge-tunnel revision measured: the commit, and whether the working tree differed from it. */
  readonly revision: string;
  readonly loadAverageAtStart: readonly number[];
}

export function machineInfo(): MachineInfo {
  let envoy: string;
  try {
    const out = execFileSync(envoyBinary(), ['--version'], { encoding: 'utf8' });
    // "version: <commit>/1.40.0/Clean/RELEASE/BoringSSL"
    const full = /version:\s*(\S+)/.exec(out)?.[1] ?? out.trim();
    const [commit, release, , build, ssl] = full.split('/');
    envoy = release !== undefined && commit !== undefined ? `${release} (${[commit.slice(0, 12), build, ssl].filter(Boolean).join(', ')})` : full;
  } catch (error) {
    envoy = `unknown (${(error as Error).message})`;
  }
  return {
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: os.totalmem() / 2 ** 30,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    envoy,
    konnectivity: konnectivityVersion(),
    revision: revision(),
    loadAverageAtStart: os.loadavg(),
  };
}

function revision(): string {
  const git = (...args: string[]): string => execFileSync('git', args, { encoding: 'utf8', cwd: import.meta.dirname });
  try {
    const commit = git('log', '-1', '--format=%h %s').trim();
    // bench/ itself (this run's results, say) is not what is measured.
    const changed = git('status', '--porcelain', '--', ':(top)', ':(top,exclude)bench')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.slice(3).split('/')[0]);
    const dirs = [...new Set(changed)].sort();
    return dirs.length === 0 ? commit : `${commit}, with uncommitted changes in ${dirs.join(', ')}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

export type PerPath<T> = Record<PathKey, T>;

export interface BenchOptions {
  readonly sizeMiB: number;
  readonly repetitions: number;
  readonly freshRequests: number;
  readonly freshWarmup: number;
  readonly establishedRequests: number;
  readonly establishedWarmup: number;
  readonly serverCloseTries: number;
  readonly serverCloseSizeMiB: number;
  readonly stalledStreams: number;
  readonly stalledSizeMiB: number;
}

export interface Results {
  readonly command: string;
  readonly started: Date;
  readonly finished: Date;
  readonly machine: MachineInfo;
  readonly options: BenchOptions;
  readonly setup: PerPath<string>;
  readonly download: PerPath<Transfer[]>;
  readonly upload: PerPath<Transfer[]>;
  readonly fresh: PerPath<number[]>;
  /** The same with the TLS session to the proxy resumed. */
  readonly resumed: PerPath<number[]>;
  readonly established: PerPath<number[]>;
  readonly serverClose: PerPath<ServerCloseResult>;
  /** Memory per stalled stream (undefined for the direct path: no proxy). */
  readonly stalled: PerPath<StallResult | undefined>;
  /** bench/control-plane.ts's Markdown table, or why it is missing. */
  readonly controlPlane: string;
  /** bench/cloud-routes.ts's table: the cloud routes inline or by VHDS, with a real cloud Envoy. */
  readonly cloudRoutes: string;
  /** bench/fleet/fleet.ts's table: the whole control path, Node change in the API to routable, and a reconnect storm. */
  readonly fleet: string;
  readonly load: {
    readonly fresh?: BackgroundLoad;
    readonly established?: BackgroundLoad;
    readonly throughput?: BackgroundLoad;
  };
  readonly loadAverageAtEnd: readonly number[];
}

const mibPerSecond = (t: Transfer): number => t.bytes / 2 ** 20 / t.seconds;
const totalCpu = (t: Transfer): number => [...t.cpu.values()].reduce((a, b) => a + b, 0);
const cpuPerGiB = (t: Transfer): number => totalCpu(t) / (t.bytes / 2 ** 30);
const fixed = (value: number, digits: number): string => value.toFixed(digits);
const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}×` : '—');

/** A Markdown table; numbers (every column but the first) right-aligned unless `textOnly`. */
function table(header: readonly string[], rows: readonly (readonly string[])[], textOnly = false): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  const rule = `|${header.map((_, i) => (i === 0 || textOnly ? '---' : '---:')).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

const HEAD = ['', ...PATH_KEYS.map((k) => PATH_NAMES[k]), 'edge-tunnel ÷ direct', 'edge-tunnel ÷ Konnectivity'];

/** One row: a value per path, then the two ratios. */
function row(label: string, values: PerPath<number>, digits: number): string[] {
  return [
    label,
    ...PATH_KEYS.map((k) => fixed(values[k], digits)),
    ratio(values.edgeTunnel, values.direct),
    ratio(values.edgeTunnel, values.konnectivity),
  ];
}

function perPath<T>(f: (key: PathKey) => T): PerPath<T> {
  return { direct: f('direct'), edgeTunnel: f('edgeTunnel'), stock: f('stock'), konnectivity: f('konnectivity') };
}

/** Median CPU seconds per GiB of each proxy process of a path, by role. */
function cpuByRole(transfers: readonly Transfer[]): Map<string, number> {
  const roles = new Set(transfers.flatMap((t) => [...t.cpu.keys()]));
  return new Map([...roles].map((role) => [role, median(transfers.map((t) => (t.cpu.get(role) ?? 0) / (t.bytes / 2 ** 30)))]));
}

/** Which process costs edge-tunnel the most per GiB, against Konnectivity's total: the "why" of a miss. */
function costliest(r: Results): string {
  const parts = (['download', 'upload'] as const).map((d) => {
    const roles = [...cpuByRole(r[d].edgeTunnel)].sort((a, b) => b[1] - a[1]);
    const total = median(r[d].edgeTunnel.map(cpuPerGiB));
    const top = roles[0];
    return top === undefined
      ? `${d}: no CPU measured`
      : `${d}: edge-tunnel's proxies spend ${fixed(total, 2)} CPU s/GiB (Konnectivity's ${fixed(median(r[d].konnectivity.map(cpuPerGiB)), 2)}), ` +
          `the ${top[0]} the most (${fixed(top[1], 2)})`;
  });
  return `${parts.join('; ')}.`;
}

/** Says whether `value` met the goal, and by how much it missed. */
function goal(label: string, value: number, target: number, higherIsBetter: boolean): string {
  const met = higherIsBetter ? value >= target : value <= target;
  const by = higherIsBetter ? target / value : value / target;
  return `| ${label} | ${higherIsBetter ? '≥' : '≤'} ${fixed(target, 2)}× | ${fixed(value, 2)}× | ${met ? 'met' : `missed (by a factor of ${fixed(by, 2)})`} |`;
}

function describeLoad(load: BackgroundLoad | undefined): string {
  return load === undefined ? 'not measured' : `${load.otherCores.toFixed(2)} cores (benchmark itself: ${load.ownCores.toFixed(2)})`;
}

function noiseVerdict(results: Results): string {
  const loads = [results.load.fresh, results.load.established, results.load.throughput].filter((l) => l !== undefined);
  if (loads.length === 0) return 'Could not read /proc: background load unknown.';
  const worst = Math.max(...loads.map((l) => l.otherCores));
  const spread = Math.max(
    ...(['download', 'upload'] as const).flatMap((d) =>
      PATH_KEYS.map((k) => {
        const rates = results[d][k].map(mibPerSecond);
        return rates.length > 1 ? Math.max(...rates) / Math.min(...rates) - 1 : 0;
      }),
    ),
  );
  const parts = [
    `The widest spread between repetitions of one throughput cell was ${(spread * 100).toFixed(0)} % (max ÷ min − 1).`,
  ];
  if (worst >= 0.25) {
    parts.unshift(
      `**Noisy run:** other processes kept on average up to ${worst.toFixed(2)} of ${results.machine.cores} cores busy during a measurement; ` +
        'absolute numbers are lower and latencies longer than on an idle machine, and all three paths were affected, but not necessarily equally.',
    );
  } else {
    parts.unshift(`Other processes were nearly idle during the measurements (at most ${worst.toFixed(2)} cores on average).`);
  }
  return parts.join(' ');
}

export function renderResults(r: Results): string {
  const o = r.options;
  const seconds = (r.finished.getTime() - r.started.getTime()) / 1000;
  const m = r.machine;
  const lines: string[] = [];
  const say = (...text: string[]): void => void lines.push(...text);

  say(
    '# edge-tunnel benchmarks',
    '',
    `Generated by \`${r.command}\` on ${r.started.toISOString()} (${Math.round(seconds)} s); written by the command, do not edit.`,
    'Benchmarks only measure: nothing here is a pass/fail threshold, and none of it runs in `make test`.',
    '',
    '## Machine',
    '',
    table(
      ['', ''],
      [
        ['CPU', `${m.cpuModel}, ${m.cores} cores (nproc)`],
        ['memory', `${m.memoryGiB.toFixed(1)} GiB`],
        ['kernel', m.kernel],
        ['Node', m.node],
        ['Envoy', m.envoy],
        ['Konnectivity', m.konnectivity],
        ['edge-tunnel revision', m.revision],
        ['date', `${r.started.toISOString()} – ${r.finished.toISOString()}`],
        ['load average (1, 5, 15 min)', `${m.loadAverageAtStart.map((l) => l.toFixed(2)).join(', ')} at start; ${r.loadAverageAtEnd.map((l) => l.toFixed(2)).join(', ')} at the end`],
      ],
      true,
    ),
    '',
    '## Noise',
    '',
    `Everything (client, byte target, Envoys, connect-terminator, Konnectivity) shares the ${m.cores} cores, so the CPU ` +
      'a proxy spends comes out of the same budget as the endpoints\': throughput through a proxy reflects its CPU cost ' +
      'per byte as much as its own speed. Other work on the machine (tests running alongside, say) competes too. CPU ' +
      'used by processes other than the benchmark\'s, averaged over each measurement:',
    '',
    `- fresh CONNECT latency: ${describeLoad(r.load.fresh)}`,
    `- established-connection latency: ${describeLoad(r.load.established)}`,
    `- bulk throughput: ${describeLoad(r.load.throughput)}`,
    '',
    noiseVerdict(r),
    '',
    '## What was measured',
    '',
    ...PATH_KEYS.map((k) => `- **${PATH_NAMES[k]}**: ${r.setup[k]}`),
    '',
    'Ratios are edge-tunnel\'s value divided by the other path\'s: above 1× means edge-tunnel\'s number is higher ' +
      '(faster, for throughput; slower, for latency).',
    '',
  );

  // --- throughput ---------------------------------------------------------------------------------------
  const medianRate = (d: 'download' | 'upload'): PerPath<number> => perPath((k) => median(r[d][k].map(mibPerSecond)));
  const cpuRows = PROXIED.flatMap((k) => {
    const down = cpuByRole(r.download[k]);
    const up = cpuByRole(r.upload[k]);
    return [...down.keys()].map((role) => [`${PATH_NAMES[k]}: ${role}`, fixed(down.get(role) ?? 0, 2), fixed(up.get(role) ?? 0, 2)]);
  });
  const totalCpu = (d: 'download' | 'upload'): PerPath<number> => perPath((k) => median(r[d][k].map(cpuPerGiB)));
  say(
    `## Bulk throughput: ${o.sizeMiB} MiB, median of ${o.repetitions} (MiB/s)`,
    '',
    table(HEAD, [row('download (the client closes)', medianRate('download'), 0), row('upload (the target checks every byte)', medianRate('upload'), 0)]),
    '',
    'Every repetition (MiB/s), in the order run (the paths take turns within each repetition):',
    '',
    table(
      ['', ...PATH_KEYS.map((k) => PATH_NAMES[k])],
      (['download', 'upload'] as const).map((d) => [d, ...PATH_KEYS.map((k) => r[d][k].map((t) => fixed(mibPerSecond(t), 0)).join(', '))]),
    ),
    '',
    'CPU seconds per GiB moved, per proxy process (median of the repetitions; user + system time from /proc):',
    '',
    table(['CPU s/GiB', 'download', 'upload'], [
      ...cpuRows,
      ...PROXIED.map((k) => [`**${PATH_NAMES[k]}, all proxies**`, fixed(totalCpu('download')[k], 2), fixed(totalCpu('upload')[k], 2)]),
    ]),
    '',
  );

  // --- latency --------------------------------------------------------------------------------------------
  const latencyTable = (samples: PerPath<number[]>): string =>
    table(HEAD, [
      row('p50', perPath((k) => percentile(samples[k], 50)), 2),
      row('p90', perPath((k) => percentile(samples[k], 90)), 2),
      row('p99', perPath((k) => percentile(samples[k], 99)), 2),
      row('max', perPath((k) => Math.max(...samples[k])), 2),
    ]);
  say(
    `## Fresh CONNECT + TLS + 1 KiB (ms; ${o.freshRequests} sequential exchanges per path after ${o.freshWarmup} warm-up)`,
    '',
    'A full TLS handshake to the proxy every time (kube-apiserver\'s egress dialer keeps no session cache):',
    '',
    latencyTable(r.fresh),
    '',
    'The same with the TLS session of the previous connection resumed (a client with a session cache; both proxies issue tickets):',
    '',
    latencyTable(r.resumed),
    '',
    `## 1 KiB request/response on an open connection (ms; ${o.establishedRequests} sequential exchanges per path after ${o.establishedWarmup} warm-up)`,
    '',
    latencyTable(r.established),
    '',
  );

  // --- downloads ended by the target's close ----------------------------------------------------------------
  const failures = (result: ServerCloseResult): string =>
    result.failures.size === 0 ? '—' : [...result.failures].map(([why, n]) => `${n}× ${why}`).join('; ');
  const endMs = (result: ServerCloseResult, p: number): string => (result.msToEnd.length === 0 ? '—' : fixed(percentile(result.msToEnd, p), 2));
  say(
    `## Downloads the target ends by closing first (${o.serverCloseSizeMiB} MiB, ${o.serverCloseTries} per path)`,
    '',
    'The target sends the bytes and closes its end right away, as a kubelet ends an exec, a `kubectl cp` or a log ' +
      'stream, while the client keeps its side open. Counted: downloads that arrived whole (every byte checked) and ' +
      'ended cleanly; timed: from the last byte to the end of the stream at the client. This raw client waits for ' +
      'the FIN, which edge-tunnel\'s cloud Envoy sends once the client had 1 s to read the end (Envoy 1.40 cannot ' +
      'half-close an HTTP/1.1 CONNECT client, and closing sooner risked the tail under load); kube-apiserver and the ' +
      'other Kubernetes clients speak TLS to the kubelet and close first, on its close_notify.',
    '',
    table(
      ['', ...PATH_KEYS.map((k) => PATH_NAMES[k])],
      [
        [`complete (of ${o.serverCloseTries})`, ...PATH_KEYS.map((k) => String(r.serverClose[k].complete))],
        ['end after the last byte, p50 (ms)', ...PATH_KEYS.map((k) => endMs(r.serverClose[k], 50))],
        ['end after the last byte, max (ms)', ...PATH_KEYS.map((k) => endMs(r.serverClose[k], 100))],
        ['failures', ...PATH_KEYS.map((k) => failures(r.serverClose[k]))],
      ],
    ),
    '',
  );

  // --- memory ---------------------------------------------------------------------------------------------------
  say(
    `## Memory: ${o.stalledStreams} clients that ask for ${o.stalledSizeMiB} MiB each and stop reading`,
    '',
    'The worst case a slow client makes: how much each proxy process grew (resident memory, after it settled) per ' +
      `stalled stream. A proxy that buffered without bound would hold close to ${o.stalledSizeMiB} MiB per stream.`,
    '',
    table(
      ['MiB per stalled stream', 'resident growth'],
      PROXIED.flatMap((k) => [...(r.stalled[k]?.rssPerStream ?? new Map<string, number>())].map(([role, bytes]) => [`${PATH_NAMES[k]}: ${role}`, fixed(bytes / 2 ** 20, 2)])),
    ),
    '',
  );

  // --- goals ------------------------------------------------------------------------------------------------------
  const rates = { down: medianRate('download'), up: medianRate('upload') };
  say(
    '## Against the goals',
    '',
    '| goal | target | measured | |',
    '|---|---:|---:|---|',
    goal('bulk download, edge-tunnel ÷ Konnectivity', rates.down.edgeTunnel / rates.down.konnectivity, 4, true),
    goal('bulk upload, edge-tunnel ÷ Konnectivity', rates.up.edgeTunnel / rates.up.konnectivity, 4, true),
    goal('bulk download, edge-tunnel ÷ direct', rates.down.edgeTunnel / rates.down.direct, 0.5, true),
    goal('bulk upload, edge-tunnel ÷ direct', rates.up.edgeTunnel / rates.up.direct, 0.5, true),
    goal('fresh CONNECT p99 (full handshake), edge-tunnel ÷ Konnectivity', percentile(r.fresh.edgeTunnel, 99) / percentile(r.fresh.konnectivity, 99), 0.5, false),
    goal('fresh CONNECT p99 (resumed session), edge-tunnel ÷ Konnectivity', percentile(r.resumed.edgeTunnel, 99) / percentile(r.resumed.konnectivity, 99), 0.5, false),
    '',
    `On ${m.cores} cores the client, the target and every proxy process share the CPU, so a path's throughput is ` +
      'bounded by the CPU its processes spend per byte. ' + costliest(r),
    '',
  );

  say(
    '## Control plane at fleet scale',
    '',
    '`bench/control-plane.ts`, in the benchmark process before any proxy was started: translating N edge nodes into ' +
      'every proxy\'s resources, the first publish into the snapshot cache, and then one node\'s change as the control ' +
      'plane makes it (incremental, with its translation memo) and without the memo (the whole fleet again).',
    '',
    r.controlPlane,
    '',
    '`bench/cloud-routes.ts`, with a real cloud Envoy and the xDS server reading a nodes file (no edge Envoys): how ' +
      'long a node added to the file takes until a CONNECT to its address is routed (503, no tunnel, instead of 404), ' +
      'and the cloud Envoy\'s memory per node, with the CONNECT routes inline (one RouteConfiguration, the default) ' +
      'and by VHDS (`xds serve --cloud-routes vhds`).',
    '',
    r.cloudRoutes,
    '',
    '`bench/fleet/fleet.ts`, the whole control path with real parts: Node objects in a real kube-apiserver, the xDS ' +
      'server watching them (its own process, mutual TLS on ADS, tunnel probing off: no edge runs), one synthetic ' +
      'edge proxy per node (`bench/fleet/synthetic-edges.ts`: one process, a gRPC channel, client certificate and ' +
      'incremental ADS stream each, ACKing as Envoy does) and a real cloud Envoy. The load: 50 Node changes per ' +
      'second for 30 s (a new InternalIP through the status subresource, as a kubelet reports it), every 5th timed ' +
      'from the PATCH until a CONNECT to the new address is routed (503 instead of 404; polled every 50 ms, each poll a ' +
      'fresh mutual-TLS connection to the cloud Envoy, which adds its own load). Bytes per change: what the cloud Envoy ' +
      'received on its xDS connection (its cluster\'s received bytes) and the edges received as gRPC messages during ' +
      'the load and until the traffic was quiet, divided by the changes. The storm: the xDS server restarted with every proxy connected, until every edge holds ' +
      'an answered response of each type again (each edge\'s stream waits for its channel, which reconnects with gRPC\'s backoff: 0.5 s growing 1.6× to 30 s, ±20 %; Envoy\'s own, doubling with full jitter, spreads a storm more thinly). ' +
      'The synthetic edges, kube-apiserver and etcd share the 2 cores with the xDS server and the cloud Envoy.',
    '',
    r.fleet,
    '',
  );

  say(
    '## How it was measured',
    '',
    '- Everything runs on loopback (127.0.0.1) on this one machine. The client is the benchmark process (Node); the ' +
      'byte target (`integration/harness/byte-target.ts`) runs in a Node process of its own and sends or checks a fixed ' +
      '1 MiB pattern, so neither end generates or hashes anything: the receiving end compares every byte with the ' +
      'pattern at memory speed. Every path ends at the same target process and port.',
    '- The client does the same on every path: get a byte stream to the target (direct: TCP; proxies: TCP, TLS with a ' +
      'client certificate to the proxy, `CONNECT <address>:<port>`, 200), then one command over it. TCP_NODELAY on the ' +
      'client\'s sockets. No TLS inside the stream: the proxies carry bytes, and end-to-end TLS would measure the client.',
    `- **Throughput**: \`STREAM ${o.sizeMiB} MiB\` (the client closes once it has every byte) and \`SINK ${o.sizeMiB} MiB\` ` +
      '(the target checks every byte and answers), timed from opening the path to the last byte or the answer. ' +
      `${o.repetitions} repetitions after a 16 MiB warm-up each way per path; the paths take turns; the median is reported.`,
    '- **Fresh CONNECT + TLS + 1 KiB**: a new TCP connection, TLS to the proxy, CONNECT, `STREAM 1024`; timed from the ' +
      'TCP connect to the last of the 1 KiB (the client then closes). Sequential; the paths take turns in rounds of up to 50.',
    '- **Open connection**: one path opened, then sequential `REPLY 1024` exchanges on it, each timed from the write to ' +
      'the last byte of the answer.',
    '- **Memory**: resident memory (VmRSS) of each proxy process before and after the stalled clients, once the sum had ' +
      'not moved by more than 1 MiB for a second.',
    '- Background load: the machine\'s busy CPU time (/proc/stat) minus that of the benchmark\'s own processes, per ' +
      'measurement; approximate (interrupt work is charged to whichever task was running).',
    '',
    '## Command',
    '',
    '```sh',
    r.command === 'make bench' ? 'make bench   # bash bench/konnectivity/install-konnectivity.sh && node --import tsx bench/run.ts' : r.command,
    '```',
    '',
  );
  return lines.join('\n');
}
