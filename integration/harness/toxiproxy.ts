// Toxiproxy for the weak-link tests: a TCP proxy put between two processes (an edge Envoy and the cloud's
// tunnel listener) whose link the test then degrades through Toxiproxy's HTTP API: latency, a bandwidth
// cap, connections reset, data that silently stops flowing, or the whole link cut (proxy disabled).
// Toxiproxy works on TCP bytes, so TLS between the two ends passes through it untouched.
import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import type { ProcessHandle, ProcessSet } from './processes.js';
import { delay, waitFor } from './wait.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** toxiproxy-server: $TOXIPROXY_SERVER if set, else the one `make tools` (fault-tools) links into .tools/bin. */
export function toxiproxyBinary(): string {
  const fromEnv = process.env.TOXIPROXY_SERVER;
  const bin = fromEnv !== undefined && fromEnv !== '' ? fromEnv : `${repoRoot}.tools/bin/toxiproxy-server`;
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    const origin = fromEnv !== undefined && fromEnv !== '' ? 'TOXIPROXY_SERVER points to' : 'expected toxiproxy-server at';
    throw new Error(`${origin} ${bin}, but it is missing or not executable: run make fault-tools (or set TOXIPROXY_SERVER)`);
  }
  return bin;
}

/**
 * Which way a toxic acts. Toxiproxy's names: `upstream` is what the client (the side that dialed the
 * proxy) sends towards the upstream server, `downstream` what the server sends back.
 */
export type ToxicStream = 'upstream' | 'downstream';

interface ToxicCommon {
  /** Unique per proxy; Toxiproxy's default is `<type>_<stream>`. */
  readonly name?: string;
  /** Default `downstream`, as in Toxiproxy. */
  readonly stream?: ToxicStream;
  /** Probability (0..1) that a connection is affected; default 1. */
  readonly toxicity?: number;
}

/** Every chunk delayed by `latency` ms ± `jitter` ms. */
export interface LatencyToxic extends ToxicCommon {
  readonly type: 'latency';
  readonly attributes: { readonly latency: number; readonly jitter?: number };
}

/** At most `rate` KB/s (Toxiproxy's KB: 1000 bytes). */
export interface BandwidthToxic extends ToxicCommon {
  readonly type: 'bandwidth';
  readonly attributes: { readonly rate: number };
}

/** The connection reset (RST, no FIN) `timeout` ms after data next arrives; 0: at once. */
export interface ResetPeerToxic extends ToxicCommon {
  readonly type: 'reset_peer';
  readonly attributes: { readonly timeout: number };
}

/** Data dropped silently (no FIN, no RST); the connection closed after `timeout` ms, never when 0. */
export interface TimeoutToxic extends ToxicCommon {
  readonly type: 'timeout';
  readonly attributes: { readonly timeout: number };
}

/** The toxics the tests use, with Toxiproxy's attribute names and units. */
export type ToxicSpec = LatencyToxic | BandwidthToxic | ResetPeerToxic | TimeoutToxic;

export interface Toxic {
  readonly name: string;
  readonly type: string;
  readonly stream: ToxicStream;
  readonly toxicity: number;
  readonly attributes: Readonly<Record<string, number>>;
}

export interface ToxiproxyProxy {
  readonly name: string;
  /** host:port Toxiproxy listens on (the real port when created with port 0). */
  readonly listen: string;
  readonly upstream: string;
  readonly enabled: boolean;
  readonly toxics: readonly Toxic[];
}

/** The port of a proxy's listen address. */
export function listenPort(proxy: ToxiproxyProxy): number {
  const port = Number(proxy.listen.slice(proxy.listen.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port <= 0) throw new Error(`toxiproxy proxy ${proxy.name} listens on ${proxy.listen}: no port`);
  return port;
}

const API_TIMEOUT_MS = 5000;

/** A client for Toxiproxy's HTTP API (http://host:port). Every call fails loudly with Toxiproxy's own error. */
export class ToxiproxyClient {
  constructor(readonly url: string) {}

  async version(): Promise<string> {
    return (await this.call('GET', '/version')).trim();
  }

  /** Creates a proxy and starts it; `listen` may use port 0, the result tells the real one. */
  async createProxy(proxy: { name: string; listen: string; upstream: string; enabled?: boolean }): Promise<ToxiproxyProxy> {
    return JSON.parse(await this.call('POST', '/proxies', { enabled: true, ...proxy }, [201])) as ToxiproxyProxy;
  }

  async proxy(name: string): Promise<ToxiproxyProxy> {
    return JSON.parse(await this.call('GET', `/proxies/${encodeURIComponent(name)}`)) as ToxiproxyProxy;
  }

  /**
   * Disabling cuts the link: Toxiproxy closes its listener (new dials are refused) and closes every
   * connection through it. Enabling listens again on the same address.
   */
  async setEnabled(name: string, enabled: boolean): Promise<ToxiproxyProxy> {
    return JSON.parse(await this.call('POST', `/proxies/${encodeURIComponent(name)}`, { enabled })) as ToxiproxyProxy;
  }

  async disable(name: string): Promise<ToxiproxyProxy> {
    return this.setEnabled(name, false);
  }

  async enable(name: string): Promise<ToxiproxyProxy> {
    return this.setEnabled(name, true);
  }

  async deleteProxy(name: string): Promise<void> {
    await this.call('DELETE', `/proxies/${encodeURIComponent(name)}`, undefined, [204]);
  }

  /** Adds a toxic to the proxy; it applies to the connections already open as well as to new ones. */
  async addToxic(proxy: string, toxic: ToxicSpec): Promise<Toxic> {
    const body = { stream: 'downstream', toxicity: 1, ...toxic };
    return JSON.parse(await this.call('POST', `/proxies/${encodeURIComponent(proxy)}/toxics`, body)) as Toxic;
  }

  /** The same toxic on both streams, named `<name>_upstream` and `<name>_downstream`. */
  async addToxicBothWays(proxy: string, toxic: ToxicSpec & { name: string }): Promise<Toxic[]> {
    const streams: ToxicStream[] = ['upstream', 'downstream'];
    const added: Toxic[] = [];
    for (const stream of streams) added.push(await this.addToxic(proxy, { ...toxic, name: `${toxic.name}_${stream}`, stream }));
    return added;
  }

  async removeToxic(proxy: string, toxic: string): Promise<void> {
    await this.call('DELETE', `/proxies/${encodeURIComponent(proxy)}/toxics/${encodeURIComponent(toxic)}`, undefined, [204]);
  }

  /** Removes every toxic of the proxy. */
  async clearToxics(proxy: string): Promise<void> {
    for (const toxic of (await this.proxy(proxy)).toxics) await this.removeToxic(proxy, toxic.name);
  }

  /** Toxiproxy's own reset: every proxy enabled, every toxic removed. */
  async reset(): Promise<void> {
    await this.call('POST', '/reset', undefined, [204]);
  }

  private async call(method: string, path: string, body?: unknown, ok: readonly number[] = [200]): Promise<string> {
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(API_TIMEOUT_MS),
    }).catch((err: unknown) => {
      throw new Error(`toxiproxy ${method} ${path}: ${(err as Error).message}`, { cause: err });
    });
    const text = await response.text();
    if (!ok.includes(response.status)) throw new Error(`toxiproxy ${method} ${path} answered ${response.status}: ${text.trim()}`);
    return text;
  }
}

export interface ToxiproxyInstance {
  readonly process: ProcessHandle;
  /** The API port on 127.0.0.1. */
  readonly port: number;
  readonly client: ToxiproxyClient;
}

export interface ToxiproxyOptions {
  /** Process name in logs and failure reports (default "toxiproxy"). */
  readonly name?: string;
  readonly timeoutMs?: number;
}

/** Starts toxiproxy-server in `set` with its API on a free loopback port; resolves once the API answers. */
export async function startToxiproxy(set: ProcessSet, opts: ToxiproxyOptions = {}): Promise<ToxiproxyInstance> {
  const name = opts.name ?? 'toxiproxy';
  const port = await freePort();
  const handle = await set.start({ name, command: toxiproxyBinary(), args: ['-host', '127.0.0.1', '-port', String(port)] });
  const client = new ToxiproxyClient(`http://127.0.0.1:${port}`);
  // Polling a dead server until the timeout would hide why it died (a port taken meanwhile, say).
  const abort = new AbortController();
  void handle.exited.then(async (exit) => {
    await Promise.race([handle.outputClosed, delay(1000)]);
    const how = exit.signal === null ? `code ${exit.code}` : exit.signal;
    abort.abort(new Error(`${name} exited (${how}) before its API answered; log tail:\n${handle.logTail(20)}`));
  });
  await waitFor(`${name} API on 127.0.0.1:${port}`, () => client.version(), {
    timeoutMs: opts.timeoutMs ?? 10_000,
    intervalMs: 50,
    signal: abort.signal,
  });
  return { process: handle, port, client };
}
