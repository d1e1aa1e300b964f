// Turns the measurements into bench/results.md: the machine, what competed for it, one table per
// measurement with absolute numbers and ratios, and how it was all measured.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { envoyBinary } from '../integration/harness/index.js';
import type { BackgroundLoad } from './cpu.js';
import { konnectivityVersion } from './konnectivity/konnectivity.js';
import { median, percentile, type ServerCloseResult, type Transfer } from './measure.js';
import type { PathKey } from './paths.js';

export const PATH_KEYS: readonly PathKey[] = ['direct', 'edgeTunnel', 'konnectivity'];
const PATH_NAMES: Record<PathKey, string> = { direct: 'direct', edgeTunnel: 'edge-tunnel', konnectivity: 'Konnectivity' };

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
  readonly established: PerPath<number[]>;
  readonly serverClose: PerPath<ServerCloseResult>;
  /** bench/control-plane.ts's Markdown table, or why it is missing. */
  readonly controlPlane: string;
  readonly load: {
    readonly fresh?: BackgroundLoad;
    readonly established?: BackgroundLoad;
    readonly throughput?: BackgroundLoad;
  };
  readonly loadAverageAtEnd: readonly number[];
}

const mibPerSecond = (t: Transfer): number => t.bytes / 2 ** 20 / t.seconds;
const cpuPerGiB = (t: Transfer): number => t.proxyCpuSeconds / (t.bytes / 2 ** 30);
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
  return { direct: f('direct'), edgeTunnel: f('edgeTunnel'), konnectivity: f('konnectivity') };
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
    `Everything (client, stand-in kubelet, Envoys, Konnectivity) shares the ${m.cores} cores. The endpoints are Node ` +
      'processes that are themselves CPU-bound at these rates (TLS, hashing, generating the blob), so the CPU a proxy ' +
      'spends comes out of the same budget: throughput through a proxy reflects its CPU cost per byte as much as its ' +
      'own speed. Other work on the machine (tests running alongside, say) competes too. CPU used by processes other ' +
      'than the benchmark\'s, averaged over each measurement:',
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
  const medianCpu = (d: 'download' | 'upload'): PerPath<number> => perPath((k) => median(r[d][k].map(cpuPerGiB)));
  say(
    `## Bulk throughput: ${o.sizeMiB} MiB, median of ${o.repetitions} (MiB/s)`,
    '',
    table(HEAD, [
      row('download (GET /blob)', medianRate('download'), 0),
      row('upload (POST /sha256)', medianRate('upload'), 0),
    ]),
    '',
    'Every repetition (MiB/s), in the order run (the paths take turns within each repetition):',
    '',
    table(
      ['', ...PATH_KEYS.map((k) => PATH_NAMES[k])],
      (['download', 'upload'] as const).map((d) => [d, ...PATH_KEYS.map((k) => r[d][k].map((t) => fixed(mibPerSecond(t), 0)).join(', '))]),
    ),
    '',
    'CPU time the proxies spent per GiB moved (median; cloud + edge Envoy for edge-tunnel, server + agent for Konnectivity):',
    '',
    table(
      ['CPU s/GiB', 'edge-tunnel', 'Konnectivity', 'edge-tunnel ÷ Konnectivity'],
      (['download', 'upload'] as const).map((d) => {
        const cpu = medianCpu(d);
        return [d, fixed(cpu.edgeTunnel, 2), fixed(cpu.konnectivity, 2), ratio(cpu.edgeTunnel, cpu.konnectivity)];
      }),
    ),
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
    `## Fresh CONNECT + TLS + 1 KiB GET (ms; ${o.freshRequests} sequential requests per path after ${o.freshWarmup} warm-up)`,
    '',
    latencyTable(r.fresh),
    '',
    `## 1 KiB GET on an established connection (ms; ${o.establishedRequests} sequential requests per path after ${o.establishedWarmup} warm-up)`,
    '',
    latencyTable(r.established),
    '',
  );

  // --- downloads ended by the kubelet's close ---------------------------------------------------------------
  const failures = (result: ServerCloseResult): string =>
    result.failures.size === 0 ? '—' : [...result.failures].map(([why, n]) => `${n}× ${why}`).join('; ');
  say(
    `## Downloads the kubelet ends by closing its connection (${o.serverCloseSizeMiB} MiB, ${o.serverCloseTries} per path)`,
    '',
    'The throughput runs above ask for keep-alive, so the client closes the connection once it has the whole body. ' +
      'Here the request says `Connection: close`: the kubelet closes its end right after the last byte, as a log ' +
      'stream or an exec session ends from the kubelet\'s side. Counted: downloads that arrived complete with the right checksum.',
    '',
    table(
      ['', ...PATH_KEYS.map((k) => PATH_NAMES[k])],
      [
        [`complete (of ${o.serverCloseTries})`, ...PATH_KEYS.map((k) => String(r.serverClose[k].complete))],
        ['failures', ...PATH_KEYS.map((k) => failures(r.serverClose[k]))],
      ],
    ),
    '',
  );
  if (r.serverClose.edgeTunnel.complete < r.serverClose.edgeTunnel.tries) {
    say(
      '**edge-tunnel lost downloads here.** What its edge Envoy did in such a failure (seen at trace level while this ' +
        'benchmark was written): the kubelet\'s FIN arrives (`read returns: 0`) while response data is still queued ' +
        'behind HTTP/2 flow control on the tunnel; the router ends the response (`commonEncodePrefix end_stream: true, ' +
        'isHalfCloseEnabled: false`), then resets the upstream (`resetting pool request`) and the HTTP connection manager ' +
        'resets the tunnel stream (`doEndStream() resetting stream`, `RST_STREAM` code 2) because the request side is ' +
        'still open; the queued tail of the body is dropped and the client sees the connection abort. Keep-alive ' +
        'exchanges, where the client closes first, were not affected.',
      '',
    );
  }

  say(
    '## Control plane at fleet scale',
    '',
    '`bench/control-plane.ts`, in the benchmark process before any proxy was started: translating N edge nodes into ' +
      'every proxy\'s resources, the first publish into the snapshot cache, and then one node\'s change (translate the ' +
      'whole fleet again and publish: what a Node update costs the xDS server). One run per size.',
    '',
    r.controlPlane,
    '',
  );

  say(
    '## How it was measured',
    '',
    '- Everything runs on loopback (127.0.0.1) on this one machine. The client is the benchmark process (Node); the ' +
      'stand-in kubelet (`integration/harness/`: HTTPS with a self-signed ECDSA P-256 certificate, `GET /blob` streams ' +
      'AES-CTR keystream, `POST /sha256` hashes the upload) runs in a Node process of its own. All three paths end at this ' +
      'same kubelet process and port; before measuring, `GET /` through each path must answer with its greeting.',
    '- The client does the same thing on every path: get a byte stream to the kubelet\'s port (direct: TCP; proxies: TCP, ' +
      'TLS with a client certificate to the proxy, `CONNECT <address>:<port>`, 200), then TLS to the kubelet over it ' +
      '(end to end; no session resumption) and HTTP/1.1. TCP_NODELAY on the client\'s sockets. Requests ask for ' +
      'keep-alive and the client closes the connection after the response (see the section above for the other way round).',
    `- **Throughput**: GET /blob?size=${o.sizeMiB} MiB (the client hashes the body: sha256 must match) and POST /sha256 of ` +
      `${o.sizeMiB} MiB generated on the fly, chunked (the kubelet's digest and byte count must match). Timed from opening ` +
      'the path to the end of the response, so it includes CONNECT and both handshakes (a few ms). ' +
      `${o.repetitions} repetitions after a 16 MiB warm-up each way per path; the paths take turns; the median is reported. ` +
      'Proxy CPU is the user + system time of the proxy processes over the transfer, from /proc.',
    '- **Fresh CONNECT + TLS + 1 KiB GET**: per request a new TCP connection, TLS to the proxy, CONNECT, TLS to the ' +
      'kubelet, GET /blob?size=1024 (checksum checked), close; timed from the start of the TCP connect to the end of ' +
      'the response. Sequential; the paths take turns in rounds of up to 50 requests, after the warm-up.',
    '- **Established connection**: one path opened and one TLS session to the kubelet, then sequential keep-alive GETs ' +
      'of 1 KiB on it; each timed from writing the request to the end of the body.',
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
