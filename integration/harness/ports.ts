// Free TCP ports for test processes. Envoy, the stand-in kubelet and the fake proxies all bind loopback
// ports chosen at runtime so that tests never collide with each other or with whatever runs on the host.
import net from 'node:net';

/**
 * A TCP port that was free a moment ago on `host`: the kernel picks one for a listener on port 0, we read it
 * and close the listener. Another process could take it before the caller binds it, which is acceptable on
 * loopback in tests (the kernel hands out ephemeral ports round-robin, so an immediate reuse is unlikely).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') {
    throw new Error(`freePort: listener on ${host} reported no TCP address`);
  }
  return address.port;
}
