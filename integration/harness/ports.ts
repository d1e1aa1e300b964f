// Free TCP ports for test processes. Envoy, the stand-in kubelet and the fake proxies all bind ports
// chosen at runtime so that tests never collide with each other or with whatever runs on the host.
//
// They come from below the kernel's ephemeral range: a port the kernel hands out for a listener on
// port 0 is an ephemeral one, and between our check and the real bind any outgoing connection may take
// it as its local port (seen in CI: Envoy's listener on 0.0.0.0:<port> refused with "Address already in
// use" after a test that opened thousands of connections). Below that range only listeners bind.
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** Ports handed out by this process, never handed out twice. */
const given = new Set<number>();
const LOWEST = 10_000;

/** The first port of the kernel's ephemeral range (net.ipv4.ip_local_port_range), 32768 if unknown. */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > LOWEST + 1000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

function listens(host: string, port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * A TCP port below the ephemeral range that nothing listened on a moment ago, on `host` and on every
 * address (Envoy binds 0.0.0.0 in some topologies). Random, so that processes choosing at once rarely meet.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const span = ephemeralStart() - LOWEST;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * span);
    if (given.has(port)) continue;
    if ((await listens(host, port)) && (host === '0.0.0.0' || (await listens('0.0.0.0', port)))) {
      given.add(port);
      return port;
    }
  }
  throw new Error(`freePort: no free port between ${LOWEST} and ${LOWEST + span} on ${host} after 200 tries`);
}
