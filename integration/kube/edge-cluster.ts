// edge-tunnel in front of a real Kubernetes control plane: kube-apiserver's egress goes through the
// cloud Envoy, the xDS server watches Node objects, and each edge node is a kwok kubelet behind its own
// edge Envoy. The node addresses are TEST-NET addresses assigned to nothing: only the tunnels reach
// them. Shared by the end-to-end test and `make demo-k8s`.

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { bundlePaths, loadBundleAuthority, writeAtomically, writeBundle, writeTlsDir } from '../../certs/bundle.js';
import { issue } from '../../certs/issue.js';
import {
  createPodNetwork,
  freePort,
  runDir,
  startStandInKubelet,
  waitFor,
  type PodNetwork,
  type ProcessHandle,
  type StandInKubelet,
} from '../harness/index.js';
import { CLOUD_SERVER_NAME, Topology, processLines } from '../topology.js';
import { KubeCluster } from './cluster.js';
import { resourceMetricsPath, startKwok } from './kwok.js';

const HARNESS = join(import.meta.dirname, '..', 'harness');
const ROOT = join(HARNESS, '..', '..');
const run = promisify(execFile);

/**
 * The xDS server as it runs in a cluster, for the CSR API: ServiceAccount edge-tunnel-xds with the
 * shipped k8s/base RBAC (its token in a kubeconfig of its own), Leases in namespace edge-tunnel, and
 * the signing CA (ca.crt, ca.key: the bundle's, as the Secret would hold them) in a directory of its own.
 */
async function signerSetup(cluster: KubeCluster, dir: string, certs: string, lifetime: string): Promise<{ kubeconfig: string; serveArgs: string[] }> {
  await cluster.kubectl(['apply', '-f', join(ROOT, 'k8s', 'base', 'namespace.yaml')]);
  await cluster.kubectl(['apply', '-n', 'edge-tunnel', '-f', join(ROOT, 'k8s', 'base', 'rbac.yaml')]);
  const { stdout: token } = await cluster.kubectl(['create', 'token', 'edge-tunnel-xds', '-n', 'edge-tunnel', '--duration', '24h']);
  const kubeconfig = parse(readFileSync(cluster.kubeconfig, 'utf8')) as { users: { user: Record<string, string> }[] };
  kubeconfig.users[0].user = { token: token.trim() };
  const path = join(dir, 'xds-serviceaccount.kubeconfig');
  writeFileSync(path, stringify(kubeconfig), { mode: 0o600 });
  const signerDir = signerCaDir(dir);
  writeAtomically(join(signerDir, 'ca.crt'), readFileSync(bundlePaths(certs).ca, 'utf8'));
  writeAtomically(join(signerDir, 'ca.key'), readFileSync(bundlePaths(certs).caKey, 'utf8'), 0o600);
  return {
    kubeconfig: path,
    serveArgs: ['--edge-certificate-signer-ca', signerDir, '--edge-certificate-lifetime', lifetime, '--leader-election-namespace', 'edge-tunnel'],
  };
}

/** The signing CA's directory in CSR mode (what the Secret edge-tunnel-signer-ca holds). */
export function signerCaDir(dir: string): string {
  return join(dir, 'signer-ca');
}

async function nodeCredentials(cluster: KubeCluster, dir: string, node: string): Promise<string> {
  const path = join(dir, `${node}-kubelet.kubeconfig`);
  return existsSync(path) ? path : cluster.nodeKubeconfig(node, path);
}

/** `agent-bootstrap certificate` for a node, as its DaemonSet runs it. */
async function agentArgs(cluster: KubeCluster, dir: string, certs: string, node: string, edgeDir: string): Promise<string[]> {
  return [
    '--import', 'tsx', join(ROOT, 'agent-bootstrap', 'cli.ts'), 'certificate', '--node', node, '--dir', edgeDir,
    '--kubeconfig', await nodeCredentials(cluster, dir, node), '--ca-file', bundlePaths(certs).ca, '--timeout', '60s',
  ];
}

/** The init container's step: a certificate now, or a clear failure. */
async function obtainWithAgent(cluster: KubeCluster, dir: string, certs: string, node: string, edgeDir: string): Promise<void> {
  await run(process.execPath, [...(await agentArgs(cluster, dir, certs, node, edgeDir)), '--once'], { cwd: ROOT }).catch((error: { stderr?: string }) => {
    throw new Error(`agent-bootstrap certificate --once for ${node} failed: ${error.stderr ?? String(error)}`);
  });
}

export const EDGE_LABEL = 'node-role.kubernetes.io/edge';
export const POD_PORT = 8443;

export interface EdgeNodeSpec {
  readonly name: string;
  readonly ip: string;
  /** Loopback range for the node's pods, so the edge Envoy can dial them on this host. */
  readonly podCIDR: string;
  /** Addresses the node may move to during a test (its kubelet certificate names them too). */
  readonly laterIps?: readonly string[];
}

interface EdgeNodeState {
  readonly spec: EdgeNodeSpec;
  readonly kubeletPort: number;
  readonly logsFile: string;
  readonly portForwardTarget: StandInKubelet;
  kwok?: ProcessHandle;
}

export class EdgeCluster {
  readonly topology: Topology;
  readonly cluster: KubeCluster;
  private readonly nodes: Map<string, EdgeNodeState>;
  private readonly podNetworks: PodNetwork[] = [];
  private readonly agents = new Map<string, ProcessHandle>();

  private constructor(topology: Topology, cluster: KubeCluster, nodes: Map<string, EdgeNodeState>) {
    this.topology = topology;
    this.cluster = cluster;
    this.nodes = nodes;
  }

  static async start(options: {
    nodes: readonly EdgeNodeSpec[];
    dir?: string;
    connectPort?: number;
    certsDir?: string;
    apiserverArgs?: readonly string[];
    /** More `xds serve` flags. */
    serveArgs?: readonly string[];
    /** Addresses (besides 127.0.0.1) pods in network namespaces reach the API server by. */
    apiserverIps?: readonly string[];
    /**
     * Edge certificates from the CSR API instead of the bundle: the xDS server signs (with the shipped
     * RBAC, as ServiceAccount edge-tunnel-xds), each node's agent asks with its kubelet credentials,
     * certificates live `lifetime` (30s, 10m …).
     */
    nodeCertificates?: { readonly lifetime: string };
  }): Promise<EdgeCluster> {
    // A directory of its own: a second cluster in one test file must not reuse the first one's etcd data.
    const dir = options.dir ?? mkdtempSync(join(runDir(), 'cluster-'));
    const certs = options.certsDir ?? join(dir, 'certs');
    const connectPort = options.connectPort ?? (await freePort());
    await writeBundle({ out: certs, edgeNodes: [], cloudNames: [CLOUD_SERVER_NAME, '127.0.0.1'], xdsNames: ['127.0.0.1'] });
    const paths = bundlePaths(certs);
    // kube-apiserver's egress client certificate, from the CONNECT client CA.
    const apiserverClient = await issue(await loadBundleAuthority(certs, 'clientCa'), { commonName: 'kube-apiserver', usage: 'client' });
    const egressDir = join(dir, 'apiserver-egress');
    writeAtomically(join(egressDir, 'tls.crt'), apiserverClient.cert);
    writeAtomically(join(egressDir, 'tls.key'), apiserverClient.key, 0o600);
    // The xDS server's tunnel health prober is a CONNECT client too.
    const probeDir = join(dir, 'tunnel-probe');
    writeTlsDir(probeDir, await issue(await loadBundleAuthority(certs, 'clientCa'), { commonName: 'edge-tunnel tunnel probe', usage: 'client' }), { 'ca.crt': readFileSync(paths.ca, 'utf8') });
    const cluster = await KubeCluster.start({
      dir: join(dir, 'cluster'),
      egress: { url: `https://127.0.0.1:${connectPort}`, caFile: paths.ca, clientCertFile: join(egressDir, 'tls.crt'), clientKeyFile: join(egressDir, 'tls.key') },
      kubeletCaFile: paths.ca,
      apiserverArgs: options.apiserverArgs,
      apiserverIps: options.apiserverIps,
    });
    const nodes = new Map<string, EdgeNodeState>();
    let topology: Topology | undefined;
    try {
      for (const spec of options.nodes) {
        const logsFile = join(dir, `${spec.name}-container.log`);
        writeFileSync(logsFile, criLine(`hello from a pod on ${spec.name}`));
        const portForwardTarget = await startStandInKubelet({ node: `${spec.name}-forwarded` });
        nodes.set(spec.name, { spec, kubeletPort: await freePort(), logsFile, portForwardTarget });
      }
      const edgeCluster = (t: Topology): EdgeCluster => new EdgeCluster(t, cluster, nodes);
      for (const state of nodes.values()) await cluster.apply(nodeObject(state.spec));
      const csr = options.nodeCertificates && (await signerSetup(cluster, dir, certs, options.nodeCertificates.lifetime));
      topology = await Topology.start({
        nodes: options.nodes.map((n) => n.name),
        kubeconfig: csr?.kubeconfig ?? cluster.kubeconfig,
        // The agents' directories are the nodes' own, not part of the operator's bundle.
        ...(csr && { obtainEdgeCertificate: (node: string, edgeDir: string) => obtainWithAgent(cluster, dir, certs, node, edgeDir), edgeTlsRoot: join(dir, 'edge-nodes') }),
        kubeletPorts: Object.fromEntries([...nodes].map(([name, s]) => [name, s.kubeletPort])),
        connectPort,
        certsDir: certs,
        // The kubelets here (kwok) listen on free ports: those are the ports a Node status may name.
        serveArgs: [
          '--pod-ports', String(POD_PORT),
          '--kubelet-ports', [...nodes.values()].map((n) => n.kubeletPort).join(','),
          // EdgeTunnelReady follows the tunnels within about a second.
          '--tunnel-probe-interval', '1', '--tunnel-probe-connect', `127.0.0.1:${connectPort}`, '--tunnel-probe-tls-dir', probeDir,
          ...(csr?.serveArgs ?? []),
          ...(options.serveArgs ?? []),
        ],
        // Cloud workloads in network namespaces of their own (a sidecar) reach the xDS server and the CONNECT listener.
        listenAll: true,
        dir,
      });
      const result = edgeCluster(topology);
      for (const name of nodes.keys()) await result.startKubelet(name);
      return result;
    } catch (error) {
      process.stderr.write(cluster.processes.describeFailure());
      await topology?.stop();
      await cluster.stop();
      await Promise.all([...nodes.values()].map((n) => n.portForwardTarget.close()));
      throw error;
    }
  }

  /** The node's own credentials (its kubelet's kubeconfig: system:node:<name>), written once. */
  async nodeKubeconfig(node: string): Promise<string> {
    return nodeCredentials(this.cluster, this.topology.dir, node);
  }

  /** Runs the node's certificate agent (`agent-bootstrap certificate`), renewing until stopped. */
  async startCertificateAgent(node: string): Promise<ProcessHandle> {
    const args = await agentArgs(this.cluster, this.topology.dir, this.topology.certs, node, this.topology.edgeTlsDir(node));
    const agent = await this.topology.processes.start({ name: `certificate-agent-${node}`, command: process.execPath, args, cwd: ROOT });
    this.agents.set(node, agent);
    return agent;
  }

  async stopCertificateAgent(node: string): Promise<void> {
    await this.agents.get(node)?.stop();
    this.agents.delete(node);
  }

  spec(node: string): EdgeNodeSpec {
    const state = this.nodes.get(node);
    if (!state) throw new Error(`no edge node ${node}`);
    return state.spec;
  }

  logsFile(node: string): string {
    return this.state(node).logsFile;
  }

  /** Where the node's kwok runs `kubectl exec` commands (and so where `kubectl cp` finds files). */
  execDir(node: string): string {
    return join(this.topology.dir, `kubelet-${node}`);
  }

  portForwardTarget(node: string): StandInKubelet {
    return this.state(node).portForwardTarget;
  }

  private state(node: string): EdgeNodeState {
    const state = this.nodes.get(node);
    if (!state) throw new Error(`no edge node ${node}`);
    return state;
  }

  /** Starts kwok as the node's kubelet, with a serving certificate naming the node's addresses. */
  async startKubelet(node: string): Promise<void> {
    const state = this.state(node);
    const certDir = this.execDir(node);
    mkdirSync(certDir, { recursive: true });
    const pem = await issue(await loadBundleAuthority(this.topology.certs, 'ca'), {
      commonName: `kubelet ${node}`,
      ipAddresses: [state.spec.ip, ...(state.spec.laterIps ?? [])],
      dnsNames: [node],
      usage: 'server',
    });
    writeAtomically(join(certDir, 'tls.crt'), pem.cert);
    writeAtomically(join(certDir, 'tls.key'), pem.key, 0o600);
    state.kwok = await startKwok(this.topology.processes, {
      node,
      nodeIp: state.spec.ip,
      port: state.kubeletPort,
      kubeconfig: this.cluster.kubeconfig,
      dir: certDir,
      certFile: join(certDir, 'tls.crt'),
      keyFile: join(certDir, 'tls.key'),
      logsFile: state.logsFile,
      portForwardTarget: { address: '127.0.0.1', port: state.portForwardTarget.port },
    });
    await waitFor(`${node} Ready`, async () => {
      const { stdout } = await this.cluster.kubectl(['get', 'node', node, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']).catch(() => ({ stdout: '' }));
      return stdout === 'True';
    }, { timeoutMs: 30_000 });
  }

  /**
   * Creates a Running pod on the node and serves it: a stand-in server at the pod IP on POD_PORT,
   * inside a network namespace of its own (kube-apiserver refuses to proxy to loopback pod IPs, and a
   * pod IP should answer only where the pod runs).
   */
  async runPod(node: string, name: string): Promise<{ ip: string }> {
    await this.cluster.apply(podObject(name, node));
    const ip = await waitFor(`pod ${name} running with an IP`, async () => {
      const { stdout } = await this.cluster.kubectl(['get', 'pod', name, '-o', 'jsonpath={.status.phase} {.status.podIP}']).catch(() => ({ stdout: '' }));
      const [phase, podIp] = stdout.split(' ');
      return phase === 'Running' && podIp ? podIp : undefined;
    }, { timeoutMs: 30_000 });
    const network = await this.podNetwork(ip);
    const [command, ...prefix] = network.exec;
    const server = await this.topology.processes.start({
      name: `pod-${name}`,
      command,
      args: [...prefix, process.execPath, '--import', 'tsx', join(HARNESS, 'stand-in-kubelet-main.ts'), '--node', name, '--host', ip, '--port', String(POD_PORT)],
      cwd: join(HARNESS, '..', '..'),
    });
    await waitFor(`pod ${name} serving`, () => server.logTail().includes('listening on'), { timeoutMs: 20_000 });
    return { ip };
  }

  /**
   * Runs a cloud workload (integration/harness/cloud-service-main.ts) in a network namespace of its
   * own at `podIp`, with `clusterIp` answering there too (what kube-proxy would route to it), serving
   * HTTPS with a certificate for `dnsNames` from the topology's CA on `ports`.
   */
  async runCloudService(options: { name: string; podIp: string; clusterIp: string; dnsNames: readonly string[]; ports: readonly number[] }): Promise<void> {
    const dir = join(this.topology.dir, `service-${options.name}`);
    mkdirSync(dir, { recursive: true });
    const pem = await issue(await loadBundleAuthority(this.topology.certs, 'ca'), { commonName: options.name, dnsNames: options.dnsNames, usage: 'server' });
    writeAtomically(join(dir, 'tls.crt'), pem.cert);
    writeAtomically(join(dir, 'tls.key'), pem.key, 0o600);
    const network = await this.podNetwork(options.podIp, undefined, [options.clusterIp]);
    const [command, ...prefix] = network.exec;
    const server = await this.topology.processes.start({
      name: `service-${options.name}`,
      command,
      args: [
        ...prefix, process.execPath, '--import', 'tsx', join(HARNESS, 'cloud-service-main.ts'),
        '--name', options.name, '--cert', join(dir, 'tls.crt'), '--key', join(dir, 'tls.key'), '--ports', options.ports.join(','),
      ],
      cwd: join(HARNESS, '..', '..'),
    });
    await waitFor(`service ${options.name} serving`, () => server.logTail().includes('listening on'), { timeoutMs: 20_000 });
  }

  /** A network namespace for a pod of this cluster (see createPodNetwork), removed when the cluster stops. */
  async podNetwork(podIp: string, hostIp?: string, extraIps: readonly string[] = []): Promise<PodNetwork> {
    const network = await createPodNetwork(podIp, hostIp, extraIps);
    this.podNetworks.push(network);
    return network;
  }

  /** One line per process started: name, pid and log file. */
  describeProcesses(): string {
    return processLines([...this.cluster.processes.handles, ...this.topology.processes.handles]);
  }

  /** Everything's logs, for a failed test. */
  describeFailure(): string {
    return this.cluster.processes.describeFailure() + this.topology.processes.describeFailure();
  }

  async stop(): Promise<void> {
    await this.topology.stop();
    await this.cluster.stop();
    await Promise.all([...this.nodes.values()].map((n) => n.portForwardTarget.close()));
    for (const network of this.podNetworks) await network.remove();
  }
}

/** One line of a CRI container log, as kwok serves it for `kubectl logs`. */
export function criLine(text: string): string {
  return `${new Date().toISOString()} stdout F ${text}\n`;
}

export function nodeObject(spec: EdgeNodeSpec, labels: Record<string, string> = { [EDGE_LABEL]: '' }): object {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: spec.name,
      labels: { 'kubernetes.io/hostname': spec.name, ...labels },
      // metrics-server reads the kubelet's resource metrics at the path this annotation names (kwok serves every node's at its own path).
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'metrics.k8s.io/resource-metrics-path': resourceMetricsPath(spec.name) },
    },
    spec: { podCIDR: spec.podCIDR, podCIDRs: [spec.podCIDR] },
  };
}

function podObject(name: string, node: string): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      nodeName: node,
      containers: [{ name: 'app', image: 'registry.invalid/app:1', ports: [{ containerPort: POD_PORT }] }],
      tolerations: [{ operator: 'Exists' }],
    },
  };
}
