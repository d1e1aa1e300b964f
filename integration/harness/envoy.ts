// Real Envoy processes for integration tests, and a small client for their admin interface: the tests
// observe Envoy the way an operator would, through /ready, /stats and /config_dump.
import { accessSync, constants } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import type { ProcessHandle, ProcessSet } from './processes.js';
import { delay, waitFor } from './wait.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** The Envoy to run: $ENVOY_BIN if set, else the one `make tools` installs into .tools/bin. */
export function envoyBinary(): string {
  const fromEnv = process.env.ENVOY_BIN;
  const bin = fromEnv !== undefined && fromEnv !== '' ? fromEnv : `${repoRoot}.tools/bin/envoy`;
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    const origin = fromEnv !== undefined && fromEnv !== '' ? 'ENVOY_BIN points to' : 'expected Envoy at';
    throw new Error(`${origin} ${bin}, but it is missing or not executable: run make tools (or set ENVOY_BIN)`);
  }
  return bin;
}

export interface EnvoyOptions {
  name: string;
  configPath: string;
  /**
   * Envoys on one host need distinct base ids: the id names the shared memory region used for hot restart,
   * and a second Envoy with the same id refuses to start.
   */
  baseId: number;
  concurrency: number;
  /** Must match the admin address in the bootstrap at configPath; the harness cannot discover it. */
  adminPort: number;
  logLevel?: 'trace' | 'debug' | 'info' | 'warning' | 'error' | 'critical' | 'off';
  extraArgs?: readonly string[];
  /** Runs Envoy under this command prefix (`ip netns exec <ns>`), its admin then at `adminHost`. */
  prefix?: readonly string[];
  adminHost?: string;
}

export interface EnvoyInstance {
  readonly name: string;
  readonly process: ProcessHandle;
  readonly admin: EnvoyAdmin;
  /**
   * Resolves when /ready says LIVE (listeners and initial xDS fetched); rejects with the log tail if Envoy
   * exits first, e.g. because it rejected its bootstrap.
   */
  waitReady(timeoutMs?: number): Promise<void>;
}

/** Starts Envoy in `set`. Resolves once the process runs, not once it is ready: see waitReady. */
export async function startEnvoy(set: ProcessSet, opts: EnvoyOptions): Promise<EnvoyInstance> {
  const args = [
    '-c',
    opts.configPath,
    '--base-id',
    String(opts.baseId),
    '--concurrency',
    String(opts.concurrency),
    '-l',
    opts.logLevel ?? 'info',
    // Short drain and shutdown times so that stopping an Envoy does not dominate test time.
    '--drain-time-s',
    '1',
    '--parent-shutdown-time-s',
    '2',
    ...(opts.extraArgs ?? []),
  ];
  const [command, ...prefixArgs] = [...(opts.prefix ?? []), envoyBinary()];
  const handle = await set.start({ name: opts.name, command, args: [...prefixArgs, ...args] });
  const admin = new EnvoyAdmin(opts.adminPort, 5000, opts.adminHost);
  return {
    name: opts.name,
    process: handle,
    admin,
    waitReady: (timeoutMs = 15_000) => waitUntilReady(opts.name, handle, admin, timeoutMs),
  };
}

async function waitUntilReady(name: string, handle: ProcessHandle, admin: EnvoyAdmin, timeoutMs: number): Promise<void> {
  // Polling a dead Envoy until the timeout would hide the reason it died; abort as soon as it exits.
  const abort = new AbortController();
  void handle.exited.then(async (exit) => {
    // The reason Envoy died is usually its last log line, which may still be in the pipe.
    await Promise.race([handle.outputClosed, delay(1000)]);
    const how = exit.signal === null ? `code ${exit.code}` : exit.signal;
    abort.abort(new Error(`envoy ${name} exited (${how}) before it was ready; log tail:\n${handle.logTail(40)}`));
  });
  try {
    await waitFor(
      `envoy ${name} to report LIVE on admin port ${admin.port}`,
      async () => {
        const { status, body } = await admin.get('/ready');
        if (status === 200 && body.trim() === 'LIVE') return true;
        throw new Error(`/ready answered ${status} ${body.trim()}`);
      },
      { timeoutMs, intervalMs: 100, signal: abort.signal },
    );
  } catch (err) {
    if (abort.signal.aborted) throw err;
    throw new Error(`${(err as Error).message}\nlog tail of ${name}:\n${handle.logTail(40)}`, { cause: err });
  }
}

export interface AdminResponse {
  status: number;
  body: string;
}

/** The admin interface of one Envoy at http://<host>:<port> (127.0.0.1 unless it runs in a namespace). */
export class EnvoyAdmin {
  constructor(
    readonly port: number,
    private readonly timeoutMs = 5000,
    readonly host = '127.0.0.1',
  ) {}

  /**
   * A GET against the admin interface. Each request uses its own connection (no agent): a pooled keep-alive
   * socket would outlive the Envoy it points to and keep the test runner's event loop busy.
   */
  get(pathAndQuery: string): Promise<AdminResponse> {
    return new Promise<AdminResponse>((resolve, reject) => {
      const req = http.get({ host: this.host, port: this.port, path: pathAndQuery, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.setTimeout(this.timeoutMs, () => {
        req.destroy(new Error(`admin GET ${pathAndQuery} on port ${this.port} timed out after ${this.timeoutMs} ms`));
      });
      req.on('error', reject);
    });
  }

  /**
   * All numeric stats (counters and gauges) from the plain-text /stats. Histogram summaries and text
   * readouts are not numbers and are left out.
   */
  async stats(): Promise<Map<string, number>> {
    const { status, body } = await this.get('/stats');
    if (status !== 200) throw new Error(`admin /stats on port ${this.port} answered ${status}`);
    return parseStats(body);
  }

  /** One stat, or undefined if Envoy has not created it (yet): Envoy creates many stats lazily. */
  async stat(name: string): Promise<number | undefined> {
    return (await this.stats()).get(name);
  }

  /** True when /ready answers LIVE; false while initializing, and also when the admin port does not answer. */
  async ready(): Promise<boolean> {
    try {
      const { status, body } = await this.get('/ready');
      return status === 200 && body.trim() === 'LIVE';
    } catch {
      return false;
    }
  }

  async configDump(): Promise<unknown> {
    const { status, body } = await this.get('/config_dump');
    if (status !== 200) throw new Error(`admin /config_dump on port ${this.port} answered ${status}`);
    return JSON.parse(body) as unknown;
  }
}

const STAT_LINE = /^(.+): (-?\d+(?:\.\d+)?)$/;

/** Parses the `name: value` lines of Envoy's plain-text /stats, keeping numeric values only. */
export function parseStats(text: string): Map<string, number> {
  const stats = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = STAT_LINE.exec(line.trim());
    if (match !== null) stats.set(match[1], Number(match[2]));
  }
  return stats;
}
