// The three ways the benchmark client reaches the stand-in kubelet. Each gives a raw byte stream to the
// kubelet's TLS port, over which the client then speaks TLS and HTTP itself, so every path runs the same
// client code and only the stream underneath differs.
import net from 'node:net';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import {
  EnvoyAdmin,
  freePort,
  httpsThroughTunnel,
  openConnect,
  waitFor,
  type ProcessHandle,
  type ProcessSet,
} from '../integration/harness/index.js';
import type { Topology } from '../integration/topology.js';

const ROOT = join(import.meta.dirname, '..');

export type PathKey = 'direct' | 'edgeTunnel' | 'konnectivity';

export interface BenchPath {
  readonly key: PathKey;
  readonly name: string;
  /** A connected stream to the kubelet's TLS port (for proxies: after a 200 answer to CONNECT). */
  open(): Promise<net.Socket>;
  /** The processes forwarding this path's bytes, for CPU accounting. */
  proxyPids(): number[];
}

export interface BenchKubelet {
  readonly process: ProcessHandle;
  readonly port: number;
  /** What GET / answers: proves which server a path reached. */
  readonly greeting: string;
}

/** The stand-in kubelet in a process of its own, so that it does not share the client's event loop. */
export async function startBenchKubelet(processes: ProcessSet, node: string): Promise<BenchKubelet> {
  const port = await freePort();
  const handle = await processes.start({
    name: 'bench-kubelet',
    command: process.execPath,
    args: ['--import', 'tsx', join(ROOT, 'integration/harness/stand-in-kubelet-main.ts'), '--node', node, '--host', '127.0.0.1', '--port', String(port)],
    cwd: ROOT,
  });
  const greeting = `kubelet ${node}\n`;
  const direct = directPath(port);
  await waitFor(
    'the stand-in kubelet answering GET /',
    async () => {
      if (handle.exitInfo() !== undefined) throw new Error(`bench-kubelet exited:\n${handle.logTail(20)}`);
      return (await httpsThroughTunnel(await direct.open(), { method: 'GET', path: '/', timeoutMs: 2000 })).body.toString() === greeting;
    },
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  return { process: handle, port, greeting };
}

/** The baseline: TCP straight to the kubelet. */
export function directPath(port: number): BenchPath {
  return {
    key: 'direct',
    name: 'direct',
    proxyPids: () => [],
    open: () =>
      new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
        socket.once('error', reject);
        socket.once('connect', () => {
          socket.off('error', reject);
          // From here on errors surface through the TLS socket layered on top.
          socket.on('error', () => undefined);
          resolve(socket);
        });
      }),
  };
}

async function connectThrough(proxyPort: number, target: string, proxyTls: ConnectionOptions): Promise<net.Socket> {
  const result = await openConnect({ proxyHost: '127.0.0.1', proxyPort, target, proxyTls, timeoutMs: 10_000 });
  if (result.status !== 200) {
    throw new Error(`CONNECT ${target} via 127.0.0.1:${proxyPort} refused: ${result.statusLine}`);
  }
  result.socket.setNoDelay(true);
  return result.socket;
}

/**
 * Through edge-tunnel: CONNECT <node address>:<port> (as kube-apiserver sends it) with mutual TLS to the
 * cloud Envoy, down a reverse tunnel (mutual TLS) to the edge Envoy, raw TCP to the kubelet.
 */
export function edgeTunnelPath(topology: Topology, node: string, port: number): BenchPath {
  const tls = topology.clientTls();
  if (tls === undefined) throw new Error('the benchmark runs edge-tunnel with TLS');
  const target = `${topology.addressOf(node)}:${port}`;
  return {
    key: 'edgeTunnel',
    name: 'edge-tunnel',
    proxyPids: () => topology.processes.handles.filter((h) => h.name === 'cloud-envoy' || h.name === `edge-${node}`).map((h) => h.pid),
    open: () => connectThrough(topology.connectPort, target, tls),
  };
}

/** Through Konnectivity: CONNECT 127.0.0.1:<port> with mutual TLS to konnectivity-server, gRPC to the agent. */
export function konnectivityPath(frontendPort: number, tls: ConnectionOptions, port: number, pids: () => number[]): BenchPath {
  return {
    key: 'konnectivity',
    name: 'Konnectivity',
    proxyPids: pids,
    open: () => connectThrough(frontendPort, `127.0.0.1:${port}`, tls),
  };
}

/** How the running edge-tunnel is set up, read from its Envoys' admin endpoints (not from assumptions). */
export async function describeEdgeTunnel(topology: Topology, node: string): Promise<string> {
  const concurrency = async (admin: EnvoyAdmin): Promise<string> => {
    const info = JSON.parse((await admin.get('/server_info')).body) as { command_line_options?: { concurrency?: number } };
    return String(info.command_line_options?.concurrency ?? '?');
  };
  const edge = new EnvoyAdmin(topology.edgeAdminPort(node));
  const listeners = (await edge.get('/config_dump?resource=dynamic_listeners')).body;
  const address = /rc:\/\/[^"\s]+/.exec(listeners)?.[0] ?? 'unknown';
  const tunnels = /:(\d+)$/.exec(address)?.[1] ?? '?';
  return (
    `cloud Envoy \`--concurrency ${await concurrency(topology.cloudAdmin)}\`, edge Envoy \`--concurrency ${await concurrency(edge)}\`, ` +
    `${tunnels} tunnels from the edge (its listener \`${address}\`), as \`integration/topology.ts\` runs the product`
  );
}
