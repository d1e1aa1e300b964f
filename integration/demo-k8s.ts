// `make demo-k8s`: edge-tunnel in front of a real kube-apiserver, in the foreground until Ctrl-C. Two
// edge Nodes (edge-a, edge-b) are kwok kubelets behind their own edge Envoys at TEST-NET addresses
// that only the tunnels reach; each runs a pod with logs, exec and port-forward behaviour. A monitoring
// pod runs the real metrics-server beside an edge-tunnel sidecar, so `kubectl top` works for edge nodes.
// Edge certificates come from the CSR API: each node's certificate agent asks with its kubelet's
// credentials, the xDS server (ServiceAccount edge-tunnel-xds, shipped RBAC) approves and signs.

import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { freePort } from './harness/index.js';
import { EdgeCluster } from './kube/edge-cluster.js';
import { MONITORING, MonitoringPod, sidecarServeArgs } from './kube/monitoring.js';
import { stopOnSignals } from './topology.js';

const ROOT = join(import.meta.dirname, '..');
const DEMO = join(ROOT, '.demo');

async function main(): Promise<void> {
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  rmSync(join(DEMO, 'certs'), { recursive: true, force: true });
  mkdirSync(DEMO, { recursive: true });
  say('starting etcd, kube-apiserver (egress through edge-tunnel), the xDS server watching Nodes, the cloud Envoy,');
  say('and for edge-a and edge-b: a kwok kubelet behind an edge Envoy …');
  const certsDir = join(DEMO, 'certs');
  const connectPort = await freePort();
  const edge = await EdgeCluster.start({
    nodes: [
      { name: 'edge-a', ip: '192.0.2.11', podCIDR: '198.51.100.0/26' },
      { name: 'edge-b', ip: '192.0.2.12', podCIDR: '198.51.100.64/26' },
    ],
    certsDir,
    connectPort,
    serveArgs: sidecarServeArgs(certsDir, connectPort),
    apiserverIps: [MONITORING.hostIp],
    // Short enough to watch a renewal (at two thirds: every 10 minutes).
    nodeCertificates: { lifetime: '15m' },
  });
  stopOnSignals(edge, say);
  say('starting each edge node\'s certificate agent (renews at two thirds of the lifetime) …');
  for (const node of ['edge-a', 'edge-b']) await edge.startCertificateAgent(node);
  say('starting a pod on each edge node …');
  await edge.runPod('edge-a', 'app-a');
  await edge.runPod('edge-b', 'app-b');
  say('starting metrics-server with an edge-tunnel sidecar in a monitoring pod …');
  await MonitoringPod.start(edge, ['edge-a', 'edge-b'].map((node) => edge.topology.kubeletPort(node)));
  const kubeconfig = join(DEMO, 'kubeconfig');
  copyFileSync(edge.cluster.kubeconfig, kubeconfig);
  const k = `.tools/bin/kubectl --kubeconfig ${relative(process.cwd(), kubeconfig)}`;
  say(`
edge-tunnel in front of a real kube-apiserver is up. kube-apiserver reaches the kubelets at
192.0.2.11 (edge-a) and 192.0.2.12 (edge-b) only through the reverse tunnels.

  started:
${edge.describeProcesses()}

try:
  ${k} get nodes -o wide
  ${k} get csr                        (each edge's tunnel certificate: requested by system:node:<name>, approved and issued by the xDS server)
  ${k} get nodes -o custom-columns='NAME:.metadata.name,EDGE-TUNNEL:.status.conditions[?(@.type=="EdgeTunnelReady")].status,REASON:.status.conditions[?(@.type=="EdgeTunnelReady")].reason'
  ${k} logs app-a
  ${k} logs -f app-a                  (append lines to ${relative(process.cwd(), edge.logsFile('edge-a'))})
  ${k} exec app-a -- sh -c 'echo hello from the edge; id -un'
  ${k} port-forward pod/app-b 18080:8080     (then: curl -sk https://127.0.0.1:18080/)
  ${k} get --raw /api/v1/nodes/edge-a/proxy/healthz
  ${k} get --raw /api/v1/namespaces/default/pods/https:app-a:8443/proxy/
  ${k} top node edge-a                (metrics-server through its sidecar; the first figures take ~20 s)
  ${k} top pod app-a
  npx tsx xds/cli/main.ts status --admin ${edge.topology.xdsAdminUrl}       (cloud, edges and the sidecar)
  npx tsx xds/cli/main.ts route 192.0.2.11:${edge.topology.kubeletPort('edge-a')} --admin ${edge.topology.xdsAdminUrl}
  npx tsx xds/cli/main.ts route 10.96.0.1:443 --admin ${edge.topology.xdsAdminUrl}        (a Service: dialed directly)
  npx tsx xds/cli/main.ts dump --role cloud --node edge-a --admin ${edge.topology.xdsAdminUrl}
  npx tsx xds/cli/main.ts diff --role cloud --envoy http://127.0.0.1:${edge.topology.cloudAdmin.port} --admin ${edge.topology.xdsAdminUrl}

Ctrl-C stops everything.`);
}

main().catch((error: unknown) => {
  process.stderr.write(`demo-k8s failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
