// One tunnel health probe: `CONNECT <node>:1` to a cloud Envoy's CONNECT listener, with a CONNECT
// client certificate. The cloud routes it down the node's tunnels and the edge Envoy answers it
// itself (translate/edge.ts), so 200 proves cloud → tunnel → edge; the cloud's own 503 means it holds
// no tunnel of the node (on the worker that took the probe), 404 that it has no route for it.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import type { SocketAddress } from '../model/settings.js';
import { TUNNEL_HEALTH_PORT, authority } from '../translate/names.js';

export type ProbeResult = { readonly ok: true } | { readonly ok: false; readonly reason: 'NoTunnel' | 'NotRouted' | 'ProbeFailed'; readonly message: string };

export interface ProbeTls {
  /** tls.crt, tls.key: a CONNECT client certificate; ca.crt: the CA of the cloud's certificate. */
  readonly dir: string;
  /** The name the cloud's certificate carries (--cloud-server-name). */
  readonly serverName: string;
}

/** The probe's TLS options, read from their files (once per round: a rotated certificate is used from the next). */
export interface ProbeCredentials {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly servername: string;
}

export function loadProbeCredentials(tls: ProbeTls): ProbeCredentials {
  return { ca: readFileSync(join(tls.dir, 'ca.crt')), cert: readFileSync(join(tls.dir, 'tls.crt')), key: readFileSync(join(tls.dir, 'tls.key')), servername: tls.serverName };
}

export function probeTunnel(cloud: SocketAddress, credentials: ProbeCredentials | undefined, node: string, timeoutMs = 5000): Promise<ProbeResult> {
  const target = authority(node, TUNNEL_HEALTH_PORT);
  return new Promise((resolve) => {
    const socket = connect({ host: cloud.address, port: cloud.port, ...credentials });
    let received = '';
    const done = (result: ProbeResult): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done({ ok: false, reason: 'ProbeFailed', message: `no answer from ${cloud.address}:${cloud.port} in ${timeoutMs} ms` }), timeoutMs);
    socket.once('secureConnect', () => socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n');
      if (end < 0) return;
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received.slice(0, end))?.[1]);
      if (status === 200) return done({ ok: true });
      if (status === 503) return done({ ok: false, reason: 'NoTunnel', message: `the cloud Envoy at ${cloud.address}:${cloud.port} holds no tunnel of ${node}` });
      if (status === 404) return done({ ok: false, reason: 'NotRouted', message: `the cloud Envoy at ${cloud.address}:${cloud.port} has no route for ${node}` });
      done({ ok: false, reason: 'ProbeFailed', message: `the cloud Envoy at ${cloud.address}:${cloud.port} answered ${received.slice(0, end)}` });
    });
    socket.on('error', (error) => done({ ok: false, reason: 'ProbeFailed', message: `${cloud.address}:${cloud.port}: ${error.message}` }));
  });
}
