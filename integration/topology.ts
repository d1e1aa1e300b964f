// A whole edge-tunnel on loopback: the xDS server (its own process, so it can be restarted), one cloud
// Envoy, one edge Envoy and one stand-in kubelet per edge node. Shared by the integration tests and
// `make demo`, so the demo runs exactly what the tests check.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { stringify } from 'yaml';
import { writeBootstrap } from '../agent-bootstrap/write.js';
import { bundlePaths, loadBundleAuthority, writeBundle, writeEdgeCertificate } from '../certs/bundle.js';
import {
  EnvoyAdmin,
  ProcessSet,
  freePort,
  getThroughProxy,
  createPodNetwork,
  openConnect,
  runDir,
  startConnectTerminator,
  startEnvoy,
  startStandInKubelet,
  startStandInKubeletProcess,
  waitFor,
  type EnvoyInstance,
  type PodNetwork,
  type ProcessHandle,
  type StandInKubelet,
} from './harness/index.js';

import { processLines } from './harness/steps.js';

export { processLines, stepsWithLogs, stopOnSignals } from './harness/steps.js';

const ROOT = join(import.meta.dirname, '..');

export interface TopologyOptions {
  readonly nodes: readonly string[];
  /** The CONNECT listener's port; a free one when omitted. */
  readonly connectPort?: number;
  /** The cloud Envoy's tunnel handshake port; a free one when omitted. */
  readonly tunnelPort?: number;
  /**
   * Where edges dial the cloud (`--tunnel-dial 127.0.0.1:<port>`) when something sits between them and
   * `tunnelPort` (a load balancer, Toxiproxy) and forwards there; `tunnelPort` itself when omitted.
   */
  readonly tunnelDialPort?: number;
  /** Kubelet ports by node; free ones when omitted. */
  readonly kubeletPorts?: Readonly<Record<string, number>>;
  readonly cloudConcurrency?: number;
  readonly dir?: string;
  /** Mutual TLS on every hop (the default); false runs the explicit insecure mode. */
  readonly tls?: boolean;
  /** Where the certificates are written (default: `certs` in the run directory). */
  readonly certsDir?: string;
  /** More `xds serve` flags (settings under test). */
  readonly serveArgs?: readonly string[];
  /**
   * Cloud Envoy replicas. With more than one, each runs in a network namespace of its own at
   * 10.77.<i>.2 (as pods do), all listening on the same ports, and every edge dials every replica.
   */
  readonly cloudReplicas?: number;
  /** Fields merged into a node's nodes-file entry (podCIDRs, say). */
  readonly nodeFields?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Entries appended to the nodes file as they are (cloud nodes, say). */
  readonly extraNodes?: readonly Readonly<Record<string, unknown>>[];
  /**
   * Watch Node objects through this kubeconfig instead of a nodes file; the kubelets are then real
   * (kwok, started by the caller) and `kubeletPorts` must name each node's port.
   */
  readonly kubeconfig?: string;
  /**
   * Who turns tunnelled CONNECT into TCP at the edge (`--edge-connect-termination`): the
   * connect-terminator (the default) or the edge Envoy itself (Envoy 1.40's lossy stock shape).
   */
  readonly edgeConnectTermination?: 'terminator' | 'envoy';
  /**
   * Each edge (its Envoy, connect-terminator and stand-in kubelet) in a network namespace of its own
   * at 10.78.<n>.2, as on a host of its own: every kubelet may listen on one port, and only a node's
   * own kubelet answers on its tunnel. The edges reach the cloud at EDGE_GATEWAY.
   */
  readonly edgeNamespaces?: boolean;
  /** The xDS server and the cloud Envoy listen on every interface (for clients in network namespaces). */
  readonly listenAll?: boolean;
  /**
   * Puts a node's certificate into its edge directory, once the xDS server and the cloud run (the CSR
   * API's signer lives in the xDS server); the bundle's CA issues it when omitted.
   */
  readonly obtainEdgeCertificate?: (node: string, dir: string) => Promise<void>;
  /**
   * Where edge certificate directories live, one per node (default: the bundle's edge/<node>). Apart
   * from the bundle when edges get theirs elsewhere: `certs reissue` then never touches them.
   */
  readonly edgeTlsRoot?: string;
}

/** A host address every edge namespace reaches the cloud Envoy and the xDS server by (the first edge's link). */
const EDGE_GATEWAY = '10.78.1.1';

/** The name edges require in the cloud Envoy's certificate. */
export const CLOUD_SERVER_NAME = 'cloud.edge-tunnel';

interface EdgeState {
  /** A TEST-NET address assigned to no interface: only the tunnel can reach the node by it. */
  readonly address: string;
  /** The stand-in kubelet, unless the topology uses real (kwok) kubelets or edge namespaces. */
  readonly kubelet?: StandInKubelet;
  /** With edgeNamespaces: the edge's namespace, where its kubelet, terminator and Envoy run. */
  readonly network?: PodNetwork;
  terminator?: ProcessHandle;
  readonly kubeletPort: number;
  readonly adminPort: number;
  readonly baseId: number;
  readonly configPath: string;
  envoy?: EnvoyInstance;
}

export class Topology {
  readonly processes = new ProcessSet();
  readonly dir: string;
  readonly nodesFile: string;
  private readonly edges = new Map<string, EdgeState>();
  private xds?: ProcessHandle;
  private terminator?: ProcessHandle;
  private readonly clouds = new Map<number, EnvoyInstance>();
  private readonly replicaNetworks = new Map<number, PodNetwork>();
  private nextBaseId = 1000 + Math.floor(Math.random() * 60_000);
  private extraServeArgs: readonly string[] = [];
  private ports!: { xds: number; xdsAdmin: number; tunnel: number; connect: number; cloudAdmin: number };

  readonly certs: string;

  private constructor(private readonly options: TopologyOptions) {
    this.dir = options.dir ?? runDir();
    this.nodesFile = join(this.dir, 'nodes.yaml');
    this.certs = options.certsDir ?? join(this.dir, 'certs');
  }

  /**
   * The connect-terminator's socket. Every edge of this topology shares this host and its loopback
   * kubelets, so one terminator serves them all, as one does per edge host in a cluster.
   */
  get terminatorSocket(): string {
    // Edges in namespaces of their own each have their own terminator, as each edge host does.
    return join(this.dir, this.options.edgeNamespaces ? 'terminator-{node}.sock' : 'terminator.sock');
  }

  /** The cloud listens beyond loopback when replicas or edges live in namespaces of their own. */
  private get listenAll(): boolean {
    return this.replicas > 1 || this.options.edgeNamespaces === true || this.options.listenAll === true;
  }

  get edgeConnectTermination(): 'terminator' | 'envoy' {
    return this.options.edgeConnectTermination ?? 'terminator';
  }

  get tls(): boolean {
    return this.options.tls ?? true;
  }

  /** TLS options of a cloud client allowed to CONNECT (undefined in insecure mode). */
  clientTls(): ConnectionOptions | undefined {
    if (!this.tls) return undefined;
    const paths = bundlePaths(this.certs);
    const pem = { ca: readFileSync(paths.ca), cert: readFileSync(paths.client), key: readFileSync(paths.clientKey) };
    return { ...pem, servername: CLOUD_SERVER_NAME };
  }

  /** Sends CONNECT to a cloud Envoy as kube-apiserver would; `tls` overrides the client's TLS options. */
  connect(target: string, tls: ConnectionOptions | undefined = this.clientTls(), replica = 1): ReturnType<typeof openConnect> {
    return openConnect({ proxyHost: this.cloudHost(replica), proxyPort: this.ports.connect, target, proxyTls: tls });
  }

  static async start(options: TopologyOptions): Promise<Topology> {
    const topology = new Topology(options);
    try {
      await topology.boot();
    } catch (error) {
      process.stderr.write(topology.processes.describeFailure());
      await topology.stop();
      throw error;
    }
    return topology;
  }

  get connectPort(): number {
    return this.ports.connect;
  }

  /** The cloud Envoy's tunnel handshake port, where edges dial (unless `tunnelDialPort` is set). */
  get tunnelPort(): number {
    return this.ports.tunnel;
  }

  /** The xDS server's ADS port. */
  get xdsPort(): number {
    return this.ports.xds;
  }

  /** The admin port of a node's edge Envoy. */
  edgeAdminPort(node: string): number {
    return this.edge(node).adminPort;
  }

  /** The next free Envoy --base-id (two Envoys on one host need distinct ones). */
  takeBaseId(): number {
    return this.nextBaseId++;
  }

  get xdsAdminUrl(): string {
    return `http://127.0.0.1:${this.ports.xdsAdmin}`;
  }

  get cloudAdmin(): EnvoyAdmin {
    return this.replicaAdmin(1);
  }

  get replicas(): number {
    return this.options.cloudReplicas ?? 1;
  }

  /** Where replica `i` (from 1) is reached: loopback for a single cloud Envoy, its namespace otherwise. */
  cloudHost(replica = 1): string {
    return this.replicas > 1 ? `10.77.${replica}.2` : '127.0.0.1';
  }

  replicaAdmin(replica: number): EnvoyAdmin {
    return new EnvoyAdmin(this.ports.cloudAdmin, 5000, this.cloudHost(replica));
  }

  kubeletPort(node: string): number {
    return this.edge(node).kubeletPort;
  }

  private async boot(): Promise<void> {
    this.ports = {
      xds: await freePort(),
      xdsAdmin: await freePort(),
      tunnel: this.options.tunnelPort ?? (await freePort()),
      connect: this.options.connectPort ?? (await freePort()),
      cloudAdmin: await freePort(),
    };
    // A caller that needs the certificates first (kube-apiserver's egress client) writes them itself.
    if (this.tls && !existsSync(bundlePaths(this.certs).ca)) {
      await writeBundle({ out: this.certs, edgeNodes: [], cloudNames: [CLOUD_SERVER_NAME, '127.0.0.1'], xdsNames: ['127.0.0.1'] });
    }
    for (const node of this.options.nodes) await this.addEdge(node);
    if (!this.options.kubeconfig) this.writeNodes(this.options.nodes);
    if (this.replicas > 1) {
      for (let i = 1; i <= this.replicas; i++) this.replicaNetworks.set(i, await createPodNetwork(this.cloudHost(i), `10.77.${i}.1`));
    }
    await this.startXds();
    await this.startCloud();
    if (this.edgeConnectTermination === 'terminator' && !this.options.edgeNamespaces) await this.startTerminator();
    if (this.tls && this.options.obtainEdgeCertificate) {
      for (const node of this.options.nodes) await this.options.obtainEdgeCertificate(node, this.edgeTlsDir(node));
    }
    for (const node of this.options.nodes) await this.startEdge(node);
  }

  /** Starts (or restarts) the connect-terminator the edge Envoys forward CONNECT to. */
  async startTerminator(): Promise<void> {
    this.terminator = await startConnectTerminator(this.processes, this.terminatorSocket);
  }

  async stopTerminator(): Promise<void> {
    await this.terminator?.stop();
    this.terminator = undefined;
  }

  /** Prepares an edge node (kubelet and bootstrap) without listing it or starting its Envoy. */
  async addEdge(node: string): Promise<void> {
    const wantedPort = this.options.kubeletPorts?.[node];
    if (this.options.kubeconfig && wantedPort === undefined) throw new Error(`kubeletPorts must name ${node}'s kubelet port`);
    const n = this.edges.size + 1;
    const network = this.options.edgeNamespaces ? await createPodNetwork(`10.78.${n}.2`, `10.78.${n}.1`) : undefined;
    let kubelet: StandInKubelet | undefined;
    let kubeletPort = wantedPort ?? 0;
    if (network && !this.options.kubeconfig) {
      const started = await startStandInKubeletProcess(this.processes, { name: `kubelet-${node}`, node, host: '127.0.0.1', port: wantedPort ?? 10250, prefix: network.exec });
      kubeletPort = started.port;
    } else if (!this.options.kubeconfig) {
      kubelet = await startStandInKubelet({ node, port: wantedPort ?? 0 });
      kubeletPort = kubelet.port;
    }
    const adminPort = await freePort();
    if (this.tls && !this.options.obtainEdgeCertificate) await this.issueEdgeCertificate(node);
    const configPath = writeBootstrap({
      role: 'edge',
      id: node,
      // An edge in a namespace reaches the xDS server at the host's address on its link.
      xds: { address: network?.hostIp ?? '127.0.0.1', port: this.ports.xds },
      adminPort,
      adminAddress: network?.podIp,
      concurrency: 1,
      // Envoy terminating CONNECT itself is measured as Envoy 1.40 ships it.
      upstreamHalfClose: this.edgeConnectTermination === 'terminator',
      outDir: join(this.dir, `edge-${node}`),
      tls: this.tls ? { dir: this.edgeTlsDir(node), serverName: '127.0.0.1' } : undefined,
    });
    const address = `192.0.2.${this.edges.size + 11}`;
    this.edges.set(node, { address, kubelet, network, kubeletPort, adminPort, configPath, baseId: this.nextBaseId++ });
  }

  /** A node's certificate directory (tls.crt, tls.key, ca.crt), which its edge Envoy watches. */
  edgeTlsDir(node: string): string {
    return this.options.edgeTlsRoot ? join(this.options.edgeTlsRoot, node) : bundlePaths(this.certs).edgeDir(node);
  }

  /** Issues (again, for rotation) a node's certificate, signed by the topology's CA. */
  async issueEdgeCertificate(node: string): Promise<void> {
    await writeEdgeCertificate(this.certs, await loadBundleAuthority(this.certs, 'ca'), node);
  }

  /** Rewrites the nodes file: the xDS server picks the change up by itself. Listed nodes are edges unless in `cloud`. */
  writeNodes(nodes: readonly string[], cloud: readonly string[] = []): void {
    const entries = nodes.map((name) => ({
      name,
      role: cloud.includes(name) ? 'cloud' : 'edge',
      addresses: [this.edge(name).address, this.ipv6Of(name), `${name}.edge.test`],
      kubeletPort: this.edge(name).kubeletPort,
      ...this.options.nodeFields?.[name],
    }));
    writeFileSync(this.nodesFile, stringify({ nodes: [...entries, ...(this.options.extraNodes ?? [])] }));
  }

  /** An IPv6 documentation address (2001:db8::/32) the nodes file also gives a node. */
  ipv6Of(node: string): string {
    return `2001:db8::${this.edge(node).address.split('.').pop()}`;
  }

  /** The InternalIP-like address the nodes file gives a node. */
  addressOf(node: string): string {
    return this.edge(node).address;
  }

  async startXds(): Promise<void> {
    this.xds = await this.processes.start({
      name: 'xds-server',
      command: process.execPath,
      args: [
        // Node flags for the xDS server alone (`--cpu-prof --cpu-prof-dir=DIR` to profile it in a benchmark).
        ...(process.env.EDGE_TUNNEL_XDS_NODE_FLAGS?.split(' ').filter((f) => f !== '') ?? []),
        '--import', 'tsx', join(ROOT, 'xds/cli/main.ts'), 'serve',
        ...(this.options.kubeconfig ? ['--kubeconfig', this.options.kubeconfig] : ['--nodes-file', this.nodesFile]),
        '--listen', `${this.listenAll ? '0.0.0.0' : '127.0.0.1'}:${this.ports.xds}`,
        '--admin', `127.0.0.1:${this.ports.xdsAdmin}`,
        '--tunnel-listen', `${this.listenAll ? '0.0.0.0' : '127.0.0.1'}:${this.ports.tunnel}`,
        '--tunnel-dial', this.tunnelDial(),
        '--connect-listen', `${this.listenAll ? '0.0.0.0' : '127.0.0.1'}:${this.ports.connect}`,
        // Twice the cloud's workers: Envoy may place two of a node's tunnels on one worker after reconnects.
        '--tunnels-per-cloud', String(2 * (this.options.cloudConcurrency ?? 2)),
        ...(this.tls
          ? [
              '--tls-dir', bundlePaths(this.certs).xdsDir,
              '--cloud-tls-dir', bundlePaths(this.certs).cloudDir,
              '--edge-tls-dir', this.edgeTlsDir('{node}'),
              '--cloud-server-name', CLOUD_SERVER_NAME,
            ]
          : ['--insecure']),
        '--edge-connect-termination', this.edgeConnectTermination,
        '--terminator-socket', this.terminatorSocket,
        ...(this.options.serveArgs ?? []),
        ...this.extraServeArgs,
      ],
      cwd: ROOT,
    });
    await waitFor('xDS server healthy', async () => (await fetch(`${this.xdsAdminUrl}/healthz`).catch(() => undefined))?.ok, {
      timeoutMs: 20_000,
    });
  }

  /** Restarts the xDS server with `serveArgs` added to the topology's own (a setting under test). */
  async restartXds(serveArgs: readonly string[] = []): Promise<void> {
    await this.stopXds();
    this.extraServeArgs = serveArgs;
    await this.startXds();
  }

  /** The xDS server's process id while it runs (for CPU and memory readings). */
  get xdsPid(): number | undefined {
    return this.xds?.pid;
  }

  async stopXds(): Promise<void> {
    await this.xds?.stop();
    this.xds = undefined;
  }

  /** Every edge dials every replica. */
  private tunnelDial(): string {
    if (this.replicas === 1) return `${this.options.edgeNamespaces ? EDGE_GATEWAY : '127.0.0.1'}:${this.options.tunnelDialPort ?? this.ports.tunnel}`;
    return Array.from({ length: this.replicas }, (_, i) => `${this.cloudHost(i + 1)}:${this.ports.tunnel}`).join(',');
  }

  /** Starts every cloud Envoy replica (or just `replica`). */
  async startCloud(replica?: number): Promise<void> {
    const which = replica === undefined ? Array.from({ length: this.replicas }, (_, i) => i + 1) : [replica];
    for (const i of which) await this.startCloudReplica(i);
  }

  private async startCloudReplica(i: number): Promise<void> {
    const network = this.replicaNetworks.get(i);
    const configPath = writeBootstrap({
      role: 'cloud',
      id: `cloud-${i}`,
      // A replica in a namespace reaches the xDS server at the host's address on its link.
      xds: { address: network?.hostIp ?? '127.0.0.1', port: this.ports.xds },
      adminPort: this.ports.cloudAdmin,
      adminAddress: this.cloudHost(i),
      concurrency: this.options.cloudConcurrency ?? 2,
      outDir: join(this.dir, `cloud-${i}`),
      tls: this.tls ? { dir: bundlePaths(this.certs).cloudDir, serverName: '127.0.0.1' } : undefined,
    });
    const cloud = await startEnvoy(this.processes, {
      name: this.replicas > 1 ? `cloud-envoy-${i}` : 'cloud-envoy',
      configPath,
      baseId: this.nextBaseId++,
      concurrency: this.options.cloudConcurrency ?? 2,
      adminPort: this.ports.cloudAdmin,
      adminHost: this.cloudHost(i),
      prefix: network?.exec,
    });
    this.clouds.set(i, cloud);
    await cloud.waitReady();
  }

  /** Stops every cloud Envoy replica (or just `replica`). */
  async stopCloud(replica?: number): Promise<void> {
    for (const [i, cloud] of [...this.clouds]) {
      if (replica !== undefined && i !== replica) continue;
      await cloud.process.stop();
      this.clouds.delete(i);
    }
  }

  async startEdge(node: string): Promise<void> {
    const edge = this.edge(node);
    const prefix = edge.network?.exec;
    if (prefix && this.edgeConnectTermination === 'terminator' && (!edge.terminator || edge.terminator.exitInfo() !== undefined)) {
      edge.terminator = await startConnectTerminator(this.processes, this.terminatorSocket.replaceAll('{node}', node), `terminator-${node}`, prefix);
    }
    edge.envoy = await startEnvoy(this.processes, {
      name: `edge-${node}`,
      configPath: edge.configPath,
      baseId: edge.baseId,
      concurrency: 1,
      adminPort: edge.adminPort,
      adminHost: edge.network?.podIp,
      prefix,
    });
    await edge.envoy.waitReady();
  }

  async stopEdge(node: string): Promise<void> {
    const edge = this.edge(node);
    await edge.envoy?.process.stop();
    edge.envoy = undefined;
  }

  private edge(node: string): EdgeState {
    const edge = this.edges.get(node);
    if (!edge) throw new Error(`no edge node ${node} in this topology`);
    return edge;
  }

  /** GET / on a node's kubelet through the CONNECT proxy; resolves to the body, or undefined on failure. */
  async reach(node: string, host = node, replica = 1): Promise<string | undefined> {
    const target = `${host.includes(':') ? `[${host}]` : host}:${this.kubeletPort(node)}`;
    const proxy = { host: this.cloudHost(replica), port: this.ports.connect, proxyTls: this.clientTls() };
    // A short per-attempt limit: a stuck attempt must not use up a caller's whole deadline.
    const response = await getThroughProxy(proxy, target, '/', 3000).catch(() => undefined);
    return response?.status === 200 ? response.body.toString() : undefined;
  }

  /**
   * Waits until a node answers several times in a row: requests land on any cloud worker, and a node
   * counts as reachable only when every worker holds one of its tunnels.
   */
  async waitReachable(node: string, timeoutMs: number, host = node, replica = 1): Promise<void> {
    await waitFor(`${node} reachable through its tunnel as ${host} via cloud replica ${replica}`, async () => {
      for (let i = 0; i < 4; i++) if ((await this.reach(node, host, replica)) !== `kubelet ${node}\n`) return false;
      return true;
    }, { timeoutMs, intervalMs: 100 });
  }

  /** One line per process started: name, pid and log file. */
  describeProcesses(): string {
    return processLines(this.processes.handles);
  }

  async stop(): Promise<void> {
    await this.processes.stopAll();
    for (const network of this.replicaNetworks.values()) await network.remove();
    for (const edge of this.edges.values()) await edge.network?.remove();
    await Promise.all([...this.edges.values()].map((e) => e.kubelet?.close()));
  }
}
