// The ways the benchmark client reaches the byte target. Each gives a raw byte stream to the target's
// port; the client then runs the same commands over it, so only the stream underneath differs. The
// proxied paths have mutual TLS on the client hop (client → CONNECT listener) and on the tunnel hop.
import net from 'node:net';
import { join } from 'node:path';
import { createSecureContext, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { EnvoyAdmin, freePort, openConnect, waitFor, type ProcessHandle, type ProcessSet } from '../integration/harness/index.js';
import type { Topology } from '../integration/topology.js';

const ROOT = join(import.meta.dirname, '..');

export type PathKey = 'direct' | 'edgeTunnel' | 'stock' | 'konnectivity';

export interface ProxyProcess {
  /** How the results name it: "cloud Envoy", "connect-terminator", … */
  readonly role: string;
  readonly pid: number;
}

export interface BenchPath {
  readonly key: PathKey;
  readonly name: string;
  /**
   * A connected stream to the byte target's port (for proxies: after a 200 answer to CONNECT). With
   * `resume`, the TLS session of the path's previous connection to the proxy is offered (a resumed
   * handshake, as a client with a session cache makes); without it every handshake is a full one.
   */
  open(resume?: boolean): Promise<net.Socket>;
  /** The processes forwarding this path's bytes, for CPU and memory accounting. */
  proxies(): ProxyProcess[];
}

export interface BenchTarget {
  readonly process: ProcessHandle;
  readonly port: number;
}

/** The byte target in a process of its own, so that it does not share the client's event loop. */
export async function startBenchTarget(processes: ProcessSet): Promise<BenchTarget> {
  const port = await freePort();
  const handle = await processes.start({
    name: 'byte-target',
    command: process.execPath,
    args: ['--import', 'tsx', join(ROOT, 'integration/harness/byte-target-main.ts'), '--host', '127.0.0.1', '--port', String(port)],
    cwd: ROOT,
  });
  await waitFor('the byte target listening', () => {
    if (handle.exitInfo() !== undefined) throw new Error(`byte-target exited:\n${handle.logTail(20)}`);
    return handle.logTail(5).includes('byte target listening');
  }, { timeoutMs: 20_000, intervalMs: 50 });
  return { process: handle, port };
}

/** The baseline: TCP straight to the target. */
export function directPath(port: number): BenchPath {
  return {
    key: 'direct',
    name: 'direct',
    proxies: () => [],
    open: () =>
      new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
        socket.once('error', reject);
        socket.once('connect', () => {
          socket.off('error', reject);
          resolve(socket);
        });
      }),
  };
}

/**
 * CONNECT through a proxy, keeping the last TLS session for resumption. The client's certificate, key and
 * CA are loaded once into one TLS context, as a real client holds its configuration: parsing them for
 * every connection cost the client about a millisecond per CONNECT, on every proxied path alike.
 */
function connector(proxyPort: number, target: string, proxyTls: ConnectionOptions): (resume?: boolean) => Promise<net.Socket> {
  const { ca, cert, key, ...rest } = proxyTls;
  const base: ConnectionOptions = { ...rest, secureContext: createSecureContext({ ca, cert, key }) };
  let session: Buffer | undefined;
  return async (resume = false) => {
    const tlsOptions = resume && session !== undefined ? { ...base, session } : base;
    const result = await openConnect({ proxyHost: '127.0.0.1', proxyPort, target, proxyTls: tlsOptions, timeoutMs: 10_000 });
    if (result.status !== 200) throw new Error(`CONNECT ${target} via 127.0.0.1:${proxyPort} refused: ${result.statusLine}`);
    result.socket.setNoDelay(true);
    // TLS 1.3 tickets arrive after the handshake; by the CONNECT answer the proxy has sent its ticket.
    session = (result.socket as TLSSocket).getSession() ?? session;
    return result.socket;
  };
}

/**
 * Through edge-tunnel: CONNECT <node address>:<port> (as kube-apiserver sends it) with mutual TLS to the
 * cloud Envoy, down a reverse tunnel (mutual TLS) to the edge Envoy, then (as shipped) the
 * connect-terminator, or (`key: 'stock'`) the edge Envoy's own CONNECT termination, raw TCP to the target.
 */
export function edgeTunnelPath(key: 'edgeTunnel' | 'stock', topology: Topology, node: string, port: number): BenchPath {
  const tls = topology.clientTls();
  if (tls === undefined) throw new Error('the benchmark runs edge-tunnel with TLS');
  const target = `${topology.addressOf(node)}:${port}`;
  const roles: Record<string, string> = { 'cloud-envoy': 'cloud Envoy', [`edge-${node}`]: 'edge Envoy', 'connect-terminator': 'connect-terminator' };
  return {
    key,
    name: key === 'stock' ? 'edge-tunnel, Envoy terminating' : 'edge-tunnel',
    proxies: () => topology.processes.handles.filter((h) => h.name in roles && h.exitInfo() === undefined).map((h) => ({ role: roles[h.name], pid: h.pid })),
    open: connector(topology.connectPort, target, tls),
  };
}

/** Through Konnectivity: CONNECT 127.0.0.1:<port> with mutual TLS to konnectivity-server, gRPC to the agent. */
export function konnectivityPath(frontendPort: number, tls: ConnectionOptions, port: number, proxies: () => ProxyProcess[]): BenchPath {
  return {
    key: 'konnectivity',
    name: 'Konnectivity',
    proxies,
    open: connector(frontendPort, `127.0.0.1:${port}`, tls),
  };
}

/** How a running edge-tunnel is set up, read from its Envoys' admin endpoints (not from assumptions). */
export async function describeEdgeTunnel(topology: Topology, node: string): Promise<string> {
  const concurrency = async (admin: EnvoyAdmin): Promise<string> => {
    const info = JSON.parse((await admin.get('/server_info')).body) as { command_line_options?: { concurrency?: number } };
    return String(info.command_line_options?.concurrency ?? '?');
  };
  const edge = new EnvoyAdmin(topology.edgeAdminPort(node));
  const listeners = (await edge.get('/config_dump?resource=dynamic_listeners')).body;
  const address = /rc:\/\/[^"\s]+/.exec(listeners)?.[0] ?? 'unknown';
  const tunnels = /:(\d+)$/.exec(address)?.[1] ?? '?';
  const clusters = (await edge.get('/config_dump?resource=dynamic_active_clusters')).body;
  const termination = clusters.includes('connect_terminator')
    ? 'the edge Envoy forwards CONNECT over HTTP/2 (Unix socket) to the connect-terminator, which dials the target'
    : 'the edge Envoy terminates CONNECT itself (router `connect_config`) and dials the target';
  return (
    `cloud Envoy \`--concurrency ${await concurrency(topology.cloudAdmin)}\`, edge Envoy \`--concurrency ${await concurrency(edge)}\`, ` +
    `${tunnels} tunnels from the edge (its listener \`${address}\`); ${termination}`
  );
}
