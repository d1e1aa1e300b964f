// The measurements, all over a raw byte stream to the byte target (integration/harness/byte-target.ts).
// Each one checks what came back (every byte against the pattern, the count, how the stream ended) and
// throws when it is wrong: a fast wrong answer must not become a number. Timing is only measured.
import type net from 'node:net';
import { PatternCheck, patternBytes, writeAll } from '../integration/harness/byte-target.js';
import { processCpuSeconds, processRssBytes } from './cpu.js';
import type { BenchPath } from './paths.js';

export interface Transfer {
  readonly bytes: number;
  /** From opening the path (TCP, TLS, CONNECT) to the last byte. */
  readonly seconds: number;
  /** CPU seconds each proxy process spent meanwhile, by its role. */
  readonly cpu: ReadonlyMap<string, number>;
}

interface Received {
  readonly bytes: number;
  readonly mismatchAt: number | undefined;
  readonly ending: string;
  /** performance.now() of the last byte and of the end of the stream. */
  readonly lastByteAt: number;
  readonly endedAt: number;
  readonly head: string;
}

/**
 * Sends `command` and reads the answer, checking it against the pattern, until the stream ends or
 * `until` bytes have arrived (then the client closes: the client closing first).
 */
function exchange(socket: net.Socket, command: string, timeoutMs: number, options: { until?: number; upload?: number } = {}): Promise<Received> {
  return new Promise((resolve) => {
    const check = new PatternCheck();
    let head = '';
    let lastByteAt = performance.now();
    let done = false;
    const timer = setTimeout(() => finish(`not done within ${timeoutMs} ms`), timeoutMs);
    const finish = (ending: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ bytes: check.bytes, mismatchAt: check.mismatchAt, ending, lastByteAt, endedAt: performance.now(), head });
    };
    socket.on('data', (chunk: Buffer) => {
      if (options.upload !== undefined) {
        head += chunk.toString('latin1');
      } else {
        check.update(chunk);
      }
      lastByteAt = performance.now();
      if (options.until !== undefined && check.bytes >= options.until) finish('client closed');
    });
    socket.on('end', () => finish('end'));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    socket.on('close', () => finish('closed without end'));
    socket.resume();
    socket.write(`${command}\n`);
    if (options.upload !== undefined) writeAll(socket, patternBytes(options.upload));
  });
}

async function timed(path: BenchPath, run: (socket: net.Socket) => Promise<number>): Promise<Transfer> {
  const proxies = path.proxies();
  const cpu0 = proxies.map((p) => processCpuSeconds(p.pid) ?? 0);
  const started = performance.now();
  const bytes = await run(await path.open());
  const seconds = (performance.now() - started) / 1000;
  const cpu = new Map(proxies.map((p, i) => [p.role, (processCpuSeconds(p.pid) ?? 0) - cpu0[i]]));
  return { bytes, seconds, cpu };
}

/** `size` bytes from the target, the client closing once it has them all (as pooled connections do). */
export function download(path: BenchPath, size: number, timeoutMs: number): Promise<Transfer> {
  return timed(path, async (socket) => {
    const got = await exchange(socket, `STREAM ${size}`, timeoutMs, { until: size });
    if (got.bytes !== size || got.mismatchAt !== undefined || got.ending !== 'client closed') {
      throw new Error(`download of ${size} bytes via ${path.name}: ${got.bytes} arrived, ${got.mismatchAt === undefined ? 'all as sent' : `wrong from byte ${got.mismatchAt}`}, ended: ${got.ending}`);
    }
    return size;
  });
}

/** `size` bytes to the target, which checks every one and answers "OK <size>". */
export function upload(path: BenchPath, size: number, timeoutMs: number): Promise<Transfer> {
  return timed(path, async (socket) => {
    const got = await exchange(socket, `SINK ${size}`, timeoutMs, { upload: size });
    if (got.head !== `OK ${size}\n`) throw new Error(`upload of ${size} bytes via ${path.name}: the target answered ${JSON.stringify(got.head)} (${got.ending})`);
    return size;
  });
}

/**
 * Milliseconds for: open the path (TCP, TLS to the proxy, CONNECT), then the last of 1 KiB from the target
 * (the client closes; how soon a stream the target closes ends is measured apart); with `resume`, the TLS
 * handshake to the proxy resumes the previous session.
 */
export async function freshExchange(path: BenchPath, resume = false): Promise<number> {
  const started = performance.now();
  const got = await exchange(await path.open(resume), 'STREAM 1024', 10_000, { until: 1024 });
  if (got.bytes !== 1024 || got.mismatchAt !== undefined || got.ending !== 'client closed') {
    throw new Error(`fresh 1 KiB via ${path.name}: ${got.bytes} bytes, ended: ${got.ending}`);
  }
  return got.lastByteAt - started;
}

/** Milliseconds per 1 KiB request/response on one open connection through the path. */
export async function establishedExchanges(path: BenchPath, warmup: number, count: number): Promise<number[]> {
  const socket = await path.open();
  const samples: number[] = [];
  try {
    let pending: ((chunk: Buffer) => void) | undefined;
    let fail: ((error: Error) => void) | undefined;
    socket.on('data', (chunk: Buffer) => pending?.(chunk));
    // A connection that dies fails the exchange in flight at once (the error is followed by 'close').
    socket.on('error', () => undefined);
    socket.on('close', () => fail?.(new Error(`1 KiB on an open connection via ${path.name}: the connection closed`)));
    socket.resume();
    for (let i = 0; i < warmup + count; i++) {
      const started = performance.now();
      await new Promise<void>((resolve, reject) => {
        const check = new PatternCheck();
        const timer = setTimeout(() => reject(new Error(`1 KiB on an open connection via ${path.name}: no answer within 5 s`)), 5000);
        fail = (error) => {
          clearTimeout(timer);
          reject(error);
        };
        pending = (chunk) => {
          check.update(chunk);
          if (check.bytes < 1024) return;
          clearTimeout(timer);
          if (check.bytes !== 1024 || check.mismatchAt !== undefined) reject(new Error(`1 KiB on an open connection via ${path.name}: ${check.bytes} bytes`));
          else resolve();
        };
        socket.write('REPLY 1024\n');
      });
      if (i >= warmup) samples.push(performance.now() - started);
    }
  } finally {
    socket.destroy();
  }
  return samples;
}

export interface ServerCloseResult {
  readonly tries: number;
  readonly complete: number;
  /** Distinct failures with their counts. */
  readonly failures: ReadonlyMap<string, number>;
  /** Milliseconds from the last byte to the end of the stream, of the complete downloads. */
  readonly msToEnd: readonly number[];
}

/** `size` bytes that the target ends by closing first, `tries` times: complete ones, and how soon each ended. */
export async function serverClosedDownloads(path: BenchPath, size: number, tries: number, timeoutMs: number): Promise<ServerCloseResult> {
  const failures = new Map<string, number>();
  const msToEnd: number[] = [];
  for (let i = 0; i < tries; i++) {
    let failure: string | undefined;
    try {
      const got = await exchange(await path.open(), `SEND ${size}`, timeoutMs);
      if (got.ending !== 'end') failure = `ended by ${got.ending}`;
      else if (got.bytes !== size) failure = 'short (a clean end)';
      else if (got.mismatchAt !== undefined) failure = 'wrong bytes';
      else msToEnd.push(got.endedAt - got.lastByteAt);
    } catch (error) {
      failure = (error as Error).message;
    }
    if (failure !== undefined) failures.set(failure, (failures.get(failure) ?? 0) + 1);
  }
  return { tries, complete: msToEnd.length, failures, msToEnd };
}

export interface StallResult {
  readonly streams: number;
  /** Resident memory each proxy process grew by, per stalled stream, in bytes, by role. */
  readonly rssPerStream: ReadonlyMap<string, number>;
}

/**
 * The worst case for a proxy's memory: `streams` clients each ask for `size` bytes and then stop reading.
 * Whatever the proxies hold for them shows as resident memory; a proxy that buffers without bound would
 * hold close to `size` per stream.
 */
export async function stalledStreams(path: BenchPath, streams: number, size: number): Promise<StallResult> {
  const proxies = path.proxies();
  const rss = (): number[] => proxies.map((p) => processRssBytes(p.pid) ?? 0);
  const before = rss();
  const sockets: net.Socket[] = [];
  try {
    for (let i = 0; i < streams; i++) {
      const socket = await path.open();
      socket.on('error', () => undefined);
      socket.pause();
      socket.write(`STREAM ${size}\n`);
      sockets.push(socket);
    }
    // Settled: the sum of the proxies' resident memory has not moved by more than 1 MiB for a second.
    let last = rss();
    let stableSince = performance.now();
    const deadline = performance.now() + 30_000;
    while (performance.now() - stableSince < 1000 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const now = rss();
      const moved = Math.abs(now.reduce((a, b) => a + b, 0) - last.reduce((a, b) => a + b, 0));
      if (moved > 1024 * 1024) stableSince = performance.now();
      last = now;
    }
    return { streams, rssPerStream: new Map(proxies.map((p, i) => [p.role, (last[i] - before[i]) / streams])) };
  } finally {
    for (const socket of sockets) socket.destroy();
  }
}

/** The nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

export function median(samples: readonly number[]): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
