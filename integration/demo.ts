// `make demo`: the whole edge-tunnel on this host in the foreground (xDS server from a nodes file, a cloud
// Envoy, and for node-a and node-b an edge Envoy, connect-terminator and stand-in kubelet in a network
// namespace of their own, as on hosts of their own) until Ctrl-C.

import { rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { bundlePaths } from '../certs/bundle.js';
import { Topology, stopOnSignals } from './topology.js';

const ROOT = join(import.meta.dirname, '..');
/** The certificates a cloud client needs, where the README says they are. */
const CERTS = join(ROOT, '.demo', 'certs');

const HELP = `usage: make demo [DEMO_ARGS="--connect-port N"]

  --connect-port N   the CONNECT proxy's port on 127.0.0.1 (default 15001)
`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'connect-port': { type: 'string', default: '15001' }, help: { type: 'boolean' } } });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const connectPort = Number(values['connect-port']);
  if (!Number.isInteger(connectPort) || connectPort < 1 || connectPort > 65535) {
    throw new Error(`--connect-port: "${values['connect-port']}" is not a port`);
  }
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  say('starting the xDS server, the cloud Envoy, and node-a and node-b in network namespaces of their own …');
  rmSync(CERTS, { recursive: true, force: true });
  const topology = await Topology.start({
    nodes: ['node-a', 'node-b'],
    connectPort,
    // Both kubelets on 10250, each on its own "host": only a node's own kubelet answers on its tunnel.
    kubeletPorts: { 'node-a': 10250, 'node-b': 10250 },
    edgeNamespaces: true,
    certsDir: CERTS,
  });
  stopOnSignals(topology, say);
  say('waiting for the reverse tunnels …');
  await topology.waitReachable('node-a', 20_000);
  await topology.waitReachable('node-b', 20_000);
  const certs = bundlePaths(relative(process.cwd(), CERTS));
  const proxy = `--proxy https://127.0.0.1:${connectPort} --proxy-cacert ${certs.ca} --proxy-cert ${certs.client} --proxy-key ${certs.clientKey}`;
  say(`
edge-tunnel demo is up.

  started:
${topology.describeProcesses()}
    kubelets       node-a and node-b on 127.0.0.1:${topology.kubeletPort('node-a')} inside their own network namespaces (stand-ins, HTTPS)
  nodes file:      ${topology.nodesFile}   (edit it: changes apply live)
  CONNECT proxy:   https://127.0.0.1:${connectPort} (mutual TLS: a client certificate from ${certs.clientCa} is required)
  certificates:    ${relative(process.cwd(), CERTS)}/ (ca.crt signed the proxy's certificate; client.crt/client.key may CONNECT)

reach node-a's kubelet through its reverse tunnel (by name, or by its address ${topology.addressOf('node-a')}):
  curl -sk ${proxy} https://node-a:${topology.kubeletPort('node-a')}/
  curl -sk ${proxy} https://${topology.addressOf('node-a')}:${topology.kubeletPort('node-a')}/
and node-b's:
  curl -sk ${proxy} https://node-b:${topology.kubeletPort('node-b')}/
without a client certificate the proxy refuses at the TLS handshake:
  curl -sk --proxy https://127.0.0.1:${connectPort} --proxy-cacert ${certs.ca} https://node-a:${topology.kubeletPort('node-a')}/
audit what the xDS server sent each proxy, what they run, and where a CONNECT goes:
  npx tsx xds/cli/main.ts status --admin ${topology.xdsAdminUrl}
  npx tsx xds/cli/main.ts dump --role edge --node node-a --admin ${topology.xdsAdminUrl}
  npx tsx xds/cli/main.ts dump --role cloud --node node-a --type RouteConfiguration --admin ${topology.xdsAdminUrl}
  npx tsx xds/cli/main.ts route ${topology.addressOf('node-a')}:10250 --admin ${topology.xdsAdminUrl}
  npx tsx xds/cli/main.ts route node-b:22 --admin ${topology.xdsAdminUrl}        (refused, and why)
  npx tsx xds/cli/main.ts diff --role cloud --envoy http://127.0.0.1:${topology.cloudAdmin.port} --admin ${topology.xdsAdminUrl}

Ctrl-C stops everything.`);
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
