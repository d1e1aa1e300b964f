// The cloud's monitoring, unchanged clients: a "monitoring pod" (a network namespace of its own at a
// cloud pod IP) running the real metrics-server, registered as the metrics.k8s.io APIService, beside
// an edge-tunnel sidecar Envoy driven by the xDS server. The pod's iptables rules, written by
// `agent-bootstrap capture` as the sidecar's init container does, redirect its connections to kubelet
// ports to the sidecar, which carries them over CONNECT to the cloud Envoy. metrics-server dials each
// kubelet at its InternalIP as it always does and never knows. Prometheus runs twice: on this host
// with `proxy_url` (the CONNECT listener), and inside the monitoring pod through the sidecar.

import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { writeBootstrap } from '../../agent-bootstrap/write.js';
import { bundlePaths, writeSidecarCertificates } from '../../certs/bundle.js';
import { EnvoyAdmin, freePort, startEnvoy, waitFor, type PodNetwork } from '../harness/index.js';
import { startPrometheus, type Prometheus } from '../harness/prometheus.js';
import { toolPath } from './cluster.js';
import type { EdgeCluster } from './edge-cluster.js';

const ROOT = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);

export const MONITORING = {
  /** The monitoring pod's IP, in cloud-1's pod range. */
  podIp: '10.245.0.20',
  /** This host's address on the pod's link: the pod reaches the API server, xDS and CONNECT by it. */
  hostIp: '10.79.0.1',
  /** The metrics-server Service's ClusterIP (answered in the pod, as kube-proxy would arrange). */
  metricsClusterIp: '10.96.0.60',
  metricsPort: 4443,
  sidecarId: 'monitoring',
  capturePort: 15006,
} as const;

/** The `xds serve` flags that point sidecars at this host's CONNECT listener and their certificates. */
export function sidecarServeArgs(certs: string, connectPort: number): string[] {
  return [
    '--sidecar-connect-dial', `${MONITORING.hostIp}:${connectPort}`,
    '--sidecar-capture-port', String(MONITORING.capturePort),
    '--sidecar-tls-dir', bundlePaths(certs).sidecarConnectDir(MONITORING.sidecarId),
  ];
}

/** What the monitoring pod needs in the API: a cloud node for its IP, and metrics-server's Service and APIService. */
function metricsServerObjects(): object[] {
  const namespace = 'kube-system';
  const port = MONITORING.metricsPort;
  const targetRef = { kind: 'Pod', name: 'monitoring-0', namespace };
  return [
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'cloud-1' }, spec: { podCIDR: '10.245.0.0/24', podCIDRs: ['10.245.0.0/24'] } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace } },
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'monitoring-0', namespace },
      spec: { nodeName: 'cloud-1', containers: [{ name: 'metrics-server', image: 'registry.invalid/metrics-server:0.8.0' }], tolerations: [{ operator: 'Exists' }] },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'metrics-server', namespace },
      spec: { clusterIP: MONITORING.metricsClusterIp, ports: [{ name: 'https', port, targetPort: port, protocol: 'TCP' }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'metrics-server-1', namespace, labels: { 'kubernetes.io/service-name': 'metrics-server' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [MONITORING.podIp], conditions: { ready: true }, targetRef }],
      ports: [{ name: 'https', port, protocol: 'TCP' }],
    },
    {
      apiVersion: 'apiregistration.k8s.io/v1',
      kind: 'APIService',
      metadata: { name: 'v1beta1.metrics.k8s.io' },
      // As metrics-server's own manifests register it: its serving certificate is self-signed.
      spec: { group: 'metrics.k8s.io', version: 'v1beta1', service: { namespace, name: 'metrics-server', port }, insecureSkipTLSVerify: true, groupPriorityMinimum: 100, versionPriority: 100 },
    },
  ];
}

export class MonitoringPod {
  private constructor(
    private readonly edge: EdgeCluster,
    readonly network: PodNetwork,
    readonly sidecarAdmin: EnvoyAdmin,
  ) {}

  /**
   * Starts the pod: capture rules for `kubeletPorts`, the sidecar (its certificates issued from the
   * cluster's bundle), metrics-server, and the API objects that make it the metrics API.
   */
  static async start(edge: EdgeCluster, kubeletPorts: readonly number[]): Promise<MonitoringPod> {
    const { topology, cluster } = edge;
    const dir = join(topology.dir, 'monitoring');
    mkdirSync(dir, { recursive: true });
    const network = await edge.podNetwork(MONITORING.podIp, MONITORING.hostIp, [MONITORING.metricsClusterIp]);
    const inPod = (args: readonly string[]): Promise<unknown> => run(network.exec[0], [...network.exec.slice(1), ...args], { cwd: ROOT });
    await inPod([process.execPath, '--import', 'tsx', 'agent-bootstrap/cli.ts', 'capture', '--ports', kubeletPorts.join(','), '--capture-port', String(MONITORING.capturePort)]);

    await writeSidecarCertificates(topology.certs, MONITORING.sidecarId);
    const adminPort = await freePort();
    const configPath = writeBootstrap({
      role: 'sidecar',
      id: MONITORING.sidecarId,
      xds: { address: MONITORING.hostIp, port: topology.xdsPort },
      adminPort,
      adminAddress: MONITORING.podIp,
      concurrency: 1,
      outDir: join(dir, 'sidecar'),
      tls: { dir: bundlePaths(topology.certs).sidecarXdsDir(MONITORING.sidecarId), serverName: '127.0.0.1' },
    });
    const sidecar = await startEnvoy(topology.processes, {
      name: 'sidecar-monitoring',
      configPath,
      baseId: topology.takeBaseId(),
      concurrency: 1,
      adminPort,
      adminHost: MONITORING.podIp,
      prefix: network.exec,
    });
    await sidecar.waitReady();

    const kubeconfig = cluster.kubeconfigFor(MONITORING.hostIp, join(dir, 'kubeconfig'));
    const [command, ...prefix] = network.exec;
    const metricsServer = await topology.processes.start({
      name: 'metrics-server',
      command,
      args: [
        ...prefix, toolPath('metrics-server'),
        `--secure-port=${MONITORING.metricsPort}`, `--cert-dir=${join(dir, 'metrics-server-certs')}`,
        `--kubeconfig=${kubeconfig}`, `--authentication-kubeconfig=${kubeconfig}`, `--authorization-kubeconfig=${kubeconfig}`,
        // As in its official manifests: the kubelet by InternalIP, at the port its Node status names.
        '--kubelet-preferred-address-types=InternalIP', '--kubelet-use-node-status-port',
        `--kubelet-certificate-authority=${bundlePaths(topology.certs).ca}`,
        // Its shortest resolution, so `kubectl top` has two samples soon; each scrape must end sooner.
        '--metric-resolution=10s', '--kubelet-request-timeout=5s',
      ],
    });
    await waitFor('metrics-server serving', () => {
      if (metricsServer.exitInfo() !== undefined) throw new Error(`metrics-server exited:\n${metricsServer.logTail(30)}`);
      return metricsServer.logTail(50).includes('Serving securely');
    }, { timeoutMs: 30_000 });
    for (const object of metricsServerObjects()) await cluster.apply(object);
    const podStatus = { status: { phase: 'Running', podIP: MONITORING.podIp, podIPs: [{ ip: MONITORING.podIp }] } };
    await cluster.kubectl(['patch', 'pod', 'monitoring-0', '-n', 'kube-system', '--subresource=status', '--type=merge', '-p', JSON.stringify(podStatus)]);
    return new MonitoringPod(edge, network, new EnvoyAdmin(adminPort, 5000, MONITORING.podIp));
  }

  /** Connections the sidecar captured and carried over CONNECT. */
  async capturedConnections(): Promise<number> {
    return (await this.sidecarAdmin.stats()).get('tcp.sidecar_capture.downstream_cx_total') ?? 0;
  }

  /**
   * Starts Prometheus with the scrape job `job` of k8s/examples/prometheus-scrape.yaml, only its file
   * paths and addresses replaced by this cluster's, scraping every second. In the pod (`inPod`) it goes
   * through the sidecar; on this host it must use the job's proxy_url.
   */
  async startPrometheus(job: string, options: { inPod: boolean; proxyUrl?: string }): Promise<Prometheus> {
    const { topology, cluster } = this.edge;
    const dir = join(topology.dir, `prometheus-${job}`);
    mkdirSync(dir, { recursive: true });
    const example = parse(readFileSync(join(ROOT, 'k8s', 'examples', 'prometheus-scrape.yaml'), 'utf8')) as { scrape_configs: Record<string, unknown>[] };
    const found = example.scrape_configs.find((c) => c.job_name === job);
    if (!found) throw new Error(`k8s/examples/prometheus-scrape.yaml has no job ${job}`);
    const paths = bundlePaths(topology.certs);
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, cluster.token, { mode: 0o600 });
    const kubeconfig = options.inPod ? cluster.kubeconfigFor(MONITORING.hostIp, join(dir, 'kubeconfig')) : cluster.kubeconfig;
    const scrape = {
      ...found,
      scrape_interval: '1s',
      scrape_timeout: '900ms',
      kubernetes_sd_configs: [{ role: 'node', kubeconfig_file: kubeconfig }],
      ...(found.proxy_url !== undefined && { proxy_url: options.proxyUrl }),
      ...(found.authorization !== undefined && { authorization: { credentials_file: tokenFile } }),
      tls_config: {
        ca_file: paths.ca,
        ...((found.tls_config as Record<string, unknown>).cert_file !== undefined && { cert_file: paths.client, key_file: paths.clientKey }),
      },
    };
    const config = join(dir, 'prometheus.yml');
    writeFileSync(config, stringify({ global: { scrape_interval: '1s' }, scrape_configs: [scrape] }));
    return startPrometheus(topology.processes, {
      name: `prometheus-${job}`,
      config,
      dataDir: join(dir, 'data'),
      host: options.inPod ? MONITORING.podIp : '127.0.0.1',
      port: await freePort(),
      prefix: options.inPod ? this.network.exec : undefined,
    });
  }
}
