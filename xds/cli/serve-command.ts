// `xds serve`: runs the control plane until SIGINT/SIGTERM.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { pino, type Logger } from 'pino';
import { Gauge, Registry } from 'prom-client';
import type { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from './kubeconfig.js';
import { DEFAULT_EDGE_SELECTOR, KubernetesNodeSource, KubernetesServiceCidrSource } from '../sources/kubernetes.js';
import type { ListSource, NodeSource } from '../sources/source.js';
import { DEFAULT_KUBELET_PORT } from '../model/node.js';
import { DEFAULT_SETTINGS, DEFAULT_TLS, type Settings, type TlsSettings } from '../model/settings.js';
import { NodesFileSource } from '../sources/nodes-file.js';
import { serve, type ServeOptions } from '../server/serve.js';
import { TunnelHealthMonitor } from '../tunnel-health/monitor.js';
import { DEFAULT_LEASE, LeaseElection } from '../leader-election/lease.js';
import { NodeConditionWriter } from '../tunnel-health/node-condition.js';
import { probeTunnel } from '../tunnel-health/probe.js';
import { ADMIN_AUTH_MODES, KubernetesTokenAuthorizer, type AdminAuthMode } from '../server/admin-auth.js';
import { UsageError, durationSeconds, hostPort, port, portList, positiveInt } from './args.js';
import { CertificateRequestSource } from '../certificates/requests.js';
import { EdgeCertificateSigner, MIN_LIFETIME_SECONDS } from '../certificates/signer.js';
import { parseLabelSelector } from '../sources/label-selector.js';

export const SERVE_HELP = `xds serve: the edge-tunnel control plane (ADS over gRPC, State of the World and incremental)

  --nodes-file PATH        YAML list of nodes, watched for changes
  --kubeconfig PATH        watch Node objects through this kubeconfig instead
  --in-cluster             watch Node objects with the pod's ServiceAccount instead
  --edge-selector SEL      label selector of edge nodes among the Node objects
                           (default ${DEFAULT_EDGE_SELECTOR}; OpenYurt: openyurt.io/is-edge-worker=true)
                           exactly one of --nodes-file, --kubeconfig, --in-cluster
  --listen HOST:PORT       ADS gRPC address              (default 127.0.0.1:18000)
  --admin HOST:PORT        admin: /healthz /metrics /status /dump /route, plain HTTP on a loopback
                           address only (default 127.0.0.1:18001): probes, kubectl exec
  --secure-admin HOST:PORT the same endpoints over HTTPS on any address, for xds status across
                           replicas and Prometheus; every path but /healthz needs credentials
  --admin-tls-dir DIR      the secure listener's tls.crt and tls.key, and ca.crt: the CA of admin
                           client certificates; reloaded when the files change
  --admin-auth MODES       who the secure listener lets in, comma-separated (default certificate):
                           certificate  a client certificate from --admin-tls-dir's ca.crt
                           token        a bearer token Kubernetes accepts (TokenReview) whose user may
                                        get the path (SubjectAccessReview, RBAC nonResourceURLs;
                                        ClusterRole edge-tunnel-auditor); needs --kubeconfig/--in-cluster
  --replica NAME           this replica's name in xds status and its Lease holder identity
                           (default: the host name, the pod's name)
  --leader-election on|off with --kubeconfig/--in-cluster: replicas elect one (a Lease named
                           edge-tunnel-xds) to do the fleet-wide work: probing tunnels, writing
                           EdgeTunnelReady and signing edge certificates (default on)
  --leader-election-namespace NS
                           the Lease's namespace (default: the pod's own, else default)
  --leader-election-lease S
                           seconds a leader's Lease lasts unrenewed before another takes over
                           (default ${DEFAULT_LEASE.leaseDurationMs / 1000}; renewed every 2/15 of it, given up after 2/3)
  --tunnel-listen H:P      cloud Envoy's tunnel handshake listener (default ${fmt(DEFAULT_SETTINGS.tunnelListen)})
  --tunnel-dial LIST       where edge Envoys dial the cloud: H:P per cloud Envoy replica, comma-
                           separated; every edge holds tunnels to each (default ${DEFAULT_SETTINGS.tunnelDial.map(fmt).join(',')})
  --connect-listen H:P     cloud Envoy's CONNECT listener (default ${fmt(DEFAULT_SETTINGS.connectListen)})
  --tunnels-per-cloud N    tunnels per edge per cloud Envoy, >= its --concurrency (default ${DEFAULT_SETTINGS.tunnelsPerCloud})
  --allowed-ports LIST     node ports reachable besides the kubelet's (default ${DEFAULT_SETTINGS.allowedPorts.join(',')})
  --pod-ports LIST         pod ports reachable at pod IPs in edge nodes' pod CIDRs, for
                           kube-apiserver's pod and service proxy (default: none)
  --cloud-destinations M   CONNECT to the cluster's other destinations (Service ClusterIPs, cloud
                           pods, cloud nodes: webhooks, aggregated APIs, service proxy, cloud
                           kubelets): direct (default; the cloud Envoy dials them itself) or refuse
  --cloud-routes MODE      how cloud Envoys get edge nodes' CONNECT routes: inline (default: all in one
                           RouteConfiguration, resent whole on a change) or vhds (each node's virtual
                           host a resource of its own, so one node's change sends one; cloud Envoys
                           must use incremental ADS, agent-bootstrap's default)
  --service-cidrs LIST     Service ClusterIP ranges, comma-separated, besides the cluster's
                           ServiceCIDR objects (needed where that API is missing or not readable)
  --kubelet-ports LIST     kubelet ports a Node status may name; others are ignored and the first
                           is used (default ${DEFAULT_KUBELET_PORT}; with --nodes-file: any port the file names)
  --edge-connect-termination MODE
                           who turns a tunnelled CONNECT into TCP at the edge: terminator (default;
                           the connect-terminator beside each edge Envoy, lossless when the kubelet
                           closes first) or envoy (Envoy itself; loses the tail of large responses
                           on Envoy 1.40: only for an Envoy with upstream half-close for TCP tunnels)
  --terminator-socket PATH the connect-terminator's Unix socket on edge hosts, "{node}" = node name
                           (default ${DEFAULT_SETTINGS.terminatorSocket})
  --sidecar-connect-dial H:P
                           where sidecars (the Envoy beside metrics-server and other clients
                           that cannot use a CONNECT proxy) reach the CONNECT listener
                           (default ${fmt(DEFAULT_SETTINGS.sidecar.connectDial)})
  --sidecar-capture-port N the port on 127.0.0.1 the sidecar pod's iptables rules redirect to
                           (default ${DEFAULT_SETTINGS.sidecar.capturePort})
  --sidecar-tls-dir DIR    certificate directory in sidecar pods: tls.crt, tls.key (a CONNECT
                           client certificate), ca.crt (default ${DEFAULT_SETTINGS.sidecar.tlsDir})
  --tls-dir DIR            the xDS server's mutual TLS: tls.crt, tls.key and ca.crt (the CA of
                           proxy certificates); reloaded when the files change
  --cloud-tls-dir DIR      certificate directory on cloud Envoy hosts (default ${DEFAULT_TLS.cloudDir})
  --edge-tls-dir DIR       certificate directory on edge hosts, "{node}" = node name (default ${DEFAULT_TLS.edgeDir})
  --cloud-server-name N    the name edges require in the cloud's certificate (default ${DEFAULT_TLS.cloudServerName})
  --insecure               no TLS anywhere: plaintext xDS, tunnels and CONNECT (debugging only);
                           without --tls-dir or --insecure the server refuses to start
  --tunnel-probe-interval S
                           with --kubeconfig/--in-cluster: probe every edge's tunnels through every
                           cloud Envoy this often and keep its Node condition EdgeTunnelReady in step
                           (default 30; 0 turns it off)
  --tunnel-probe-connect LIST
                           the cloud Envoys' CONNECT listeners to probe through, H:P per replica
                           (default: --connect-listen)
  --tunnel-probe-tls-dir DIR
                           the probe's CONNECT client certificate: tls.crt, tls.key, and ca.crt (the
                           CA of the cloud's certificate); required with TLS
  --edge-certificate-signer-ca DIR
                           with --kubeconfig/--in-cluster: approve and sign edge tunnel certificates
                           requested through the CSR API (signer edge-tunnel.io/edge-node; agent-bootstrap
                           certificate on each edge), with DIR's ca.key and the matching certificate in
                           DIR's ca.crt; only the leader signs, every replica reports waiting requests
  --edge-certificate-lifetime DUR
                           the longest edge certificate issued (default 24h; 30s, 10m, 7d …); agents
                           renew at two thirds of it
  --log-level LEVEL        pino level (default info)
`;

/** The Lease the replicas elect their leader with. */
const LEADER_LEASE = 'edge-tunnel-xds';

function fmt(a: { address: string; port: number }): string {
  return `${a.address}:${a.port}`;
}

/** The cluster's credentials: from a kubeconfig file, or the pod's ServiceAccount. */
function clusterConfig(path: string | undefined): KubeConfig {
  return loadKubeConfig(path, 'in-cluster');
}

/** The nodes file, or the cluster's Nodes and ServiceCIDRs. */
function inputSources(
  values: { 'nodes-file'?: string; kubeconfig?: string; 'in-cluster'?: boolean; 'edge-selector'?: string },
  logger: Logger,
  registry: Registry,
): { source: NodeSource; serviceCidrSource?: ListSource<readonly string[]> } {
  if (values['nodes-file'] !== undefined) {
    return { source: new NodesFileSource({ path: values['nodes-file'], logger: logger.child({ component: 'nodes-file' }) }) };
  }
  const kubeConfig = clusterConfig(values.kubeconfig);
  const common = { kubeConfig, logger: logger.child({ component: 'kubernetes' }), registry };
  return {
    source: new KubernetesNodeSource({ ...common, edgeSelector: values['edge-selector'] ?? DEFAULT_EDGE_SELECTOR }),
    serviceCidrSource: new KubernetesServiceCidrSource(common),
  };
}

/** The EdgeTunnelReady prober, when watching a cluster and not turned off. */
function tunnelHealth(
  values: { kubeconfig?: string; 'in-cluster'?: boolean; 'tunnel-probe-interval': string; 'tunnel-probe-connect'?: string; 'tunnel-probe-tls-dir'?: string },
  settings: Settings,
  logger: Logger,
  registry: Registry,
  election: LeaseElection | undefined,
): { monitor: TunnelHealthMonitor } | undefined {
  const seconds = Number(values['tunnel-probe-interval']);
  if (!(seconds >= 0)) throw new UsageError(`--tunnel-probe-interval: "${values['tunnel-probe-interval']}" is not a number of seconds`);
  if (seconds === 0 || (values.kubeconfig === undefined && !values['in-cluster'])) return undefined;
  if (settings.tls && !values['tunnel-probe-tls-dir']) throw new UsageError('--tunnel-probe-tls-dir is required to probe tunnels with TLS (or --tunnel-probe-interval 0)');
  const kubeConfig = clusterConfig(values.kubeconfig);
  const writer = new NodeConditionWriter(kubeConfig, logger.child({ component: 'tunnel-health' }));
  const clouds = values['tunnel-probe-connect'] ? values['tunnel-probe-connect'].split(',').map((c) => hostPort('tunnel-probe-connect', c.trim())) : [settings.connectListen];
  const tls = settings.tls && values['tunnel-probe-tls-dir'] ? { dir: values['tunnel-probe-tls-dir'], serverName: settings.tls.cloudServerName } : undefined;
  // One series per edge node, 1 while every cloud replica reaches it: what a "node unreachable" alert needs.
  const ready = new Gauge({ name: 'xds_edge_tunnel_ready', help: 'EdgeTunnelReady of each edge node: 1 when every cloud Envoy reaches it through its tunnels', labelNames: ['node'], registers: [registry] });
  const reported = new Set<string>();
  // Only the leader probes and writes; the others export no statuses (stale ones would alert).
  election?.onLeading((leading) => {
    if (leading) return;
    writer.reset();
    for (const node of reported) ready.remove({ node });
    reported.clear();
  });
  return {
    monitor: new TunnelHealthMonitor({
      clouds,
      tls,
      intervalMs: seconds * 1000,
      probe: probeTunnel,
      ...(election && { active: () => election.isLeader() }),
      onStatus: (node, status) => {
        ready.set({ node }, status.ready ? 1 : 0);
        reported.add(node);
        writer.set(node, status);
      },
      onNodes: (nodes) => {
        writer.retain(nodes);
        const keep = new Set(nodes);
        for (const node of reported) {
          if (keep.has(node)) continue;
          ready.remove({ node });
          reported.delete(node);
        }
      },
    }),
  };
}

/** The edge certificate approver/signer and the watch of requests that feeds it, when asked for. */
function certificateSigner(
  values: { kubeconfig?: string; 'in-cluster'?: boolean; 'edge-selector'?: string; 'edge-certificate-signer-ca'?: string; 'edge-certificate-lifetime': string },
  election: LeaseElection | undefined,
  logger: Logger,
  registry: Registry,
): ServeOptions['certificates'] {
  const caDir = values['edge-certificate-signer-ca'];
  if (caDir === undefined) return undefined;
  if (values.kubeconfig === undefined && !values['in-cluster']) throw new UsageError('--edge-certificate-signer-ca signs requests of the CSR API: it needs --kubeconfig or --in-cluster');
  const lifetimeSeconds = durationSeconds('edge-certificate-lifetime', values['edge-certificate-lifetime']);
  if (lifetimeSeconds < MIN_LIFETIME_SECONDS) throw new UsageError(`--edge-certificate-lifetime: at least ${MIN_LIFETIME_SECONDS}s`);
  const kubeConfig = clusterConfig(values.kubeconfig);
  const certificateLogger = logger.child({ component: 'certificates' });
  return {
    source: new CertificateRequestSource({ kubeConfig, logger: certificateLogger, registry }),
    signer: new EdgeCertificateSigner({
      kubeConfig,
      caDir,
      edgeSelector: parseLabelSelector(values['edge-selector'] ?? DEFAULT_EDGE_SELECTOR),
      lifetimeSeconds,
      isLeader: () => election?.isLeader() ?? true,
      logger: certificateLogger,
      registry,
    }),
  };
}

/** The Lease this replica competes for, when watching a cluster and not turned off. */
function leaderElection(
  values: { kubeconfig?: string; 'in-cluster'?: boolean; 'leader-election': string; 'leader-election-namespace'?: string; 'leader-election-lease': string },
  identity: string,
  logger: Logger,
  registry: Registry,
): LeaseElection | undefined {
  if (values['leader-election'] !== 'on' && values['leader-election'] !== 'off') throw new UsageError(`--leader-election: "${values['leader-election']}" is not on or off`);
  if (values['leader-election'] === 'off' || (values.kubeconfig === undefined && !values['in-cluster'])) return undefined;
  const leaseSeconds = positiveInt('leader-election-lease', values['leader-election-lease']);
  if (leaseSeconds < 3) throw new UsageError('--leader-election-lease: at least 3 seconds');
  const election = new LeaseElection({
    kubeConfig: clusterConfig(values.kubeconfig),
    namespace: values['leader-election-namespace'] ?? podNamespace() ?? 'default',
    name: LEADER_LEASE,
    identity,
    logger: logger.child({ component: 'leader-election' }),
    // client-go's proportions: renew within 2/3 of the lease, try every 2/15 of it.
    leaseDurationMs: leaseSeconds * 1000,
    renewDeadlineMs: (leaseSeconds * 2000) / 3,
    retryPeriodMs: (leaseSeconds * 2000) / 15,
  });
  const leader = new Gauge({ name: 'xds_leader', help: '1 while this replica holds the Lease for fleet-wide work (the tunnel prober)', labelNames: ['lease'], registers: [registry] });
  leader.set({ lease: LEADER_LEASE }, 0);
  election.onLeading((leading) => leader.set({ lease: LEADER_LEASE }, leading ? 1 : 0));
  return election;
}

/** The namespace of the pod this runs in, if it runs in one. */
function podNamespace(): string | undefined {
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The secure admin listener, when asked for. */
function secureAdmin(values: { 'secure-admin'?: string; 'admin-tls-dir'?: string; 'admin-auth': string; kubeconfig?: string; 'in-cluster'?: boolean }): ServeOptions['secureAdmin'] {
  const modes = values['admin-auth'].split(',').map((m) => m.trim()).filter(Boolean);
  const unknown = modes.filter((m) => !(ADMIN_AUTH_MODES as readonly string[]).includes(m));
  if (modes.length === 0 || unknown.length > 0) throw new UsageError(`--admin-auth: "${values['admin-auth']}" is not a list of ${ADMIN_AUTH_MODES.join(', ')}`);
  if (values['secure-admin'] === undefined) {
    if (values['admin-tls-dir'] !== undefined) throw new UsageError('--admin-tls-dir is for --secure-admin HOST:PORT');
    return undefined;
  }
  if (values['admin-tls-dir'] === undefined) throw new UsageError('--secure-admin needs --admin-tls-dir (its certificate, and the CA of client certificates)');
  const token = modes.includes('token');
  if (token && values.kubeconfig === undefined && !values['in-cluster']) throw new UsageError('--admin-auth token asks Kubernetes about each token: it needs --kubeconfig or --in-cluster');
  const listen = hostPort('secure-admin', values['secure-admin']);
  return {
    host: listen.address,
    port: listen.port,
    tlsDir: values['admin-tls-dir'],
    modes: modes as AdminAuthMode[],
    ...(token && { tokens: new KubernetesTokenAuthorizer(clusterConfig(values.kubeconfig)) }),
  };
}

function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\./.test(address);
}

function terminationMode(value: string): Settings['edgeConnectTermination'] {
  if (value !== 'terminator' && value !== 'envoy') throw new UsageError(`--edge-connect-termination: "${value}" is not terminator or envoy`);
  return value;
}

function cloudRoutesMode(value: string): Settings['cloudRoutes'] {
  if (value !== 'inline' && value !== 'vhds') throw new UsageError(`--cloud-routes: "${value}" is not inline or vhds`);
  return value;
}

function cloudDestinationsMode(value: string): Settings['cloudDestinations'] {
  if (value !== 'refuse' && value !== 'direct') throw new UsageError(`--cloud-destinations: "${value}" is not direct or refuse`);
  return value;
}

export async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'nodes-file': { type: 'string' },
      kubeconfig: { type: 'string' },
      'in-cluster': { type: 'boolean', default: false },
      'edge-selector': { type: 'string' },
      listen: { type: 'string', default: '127.0.0.1:18000' },
      admin: { type: 'string', default: '127.0.0.1:18001' },
      'tunnel-listen': { type: 'string' },
      'tunnel-dial': { type: 'string' },
      'connect-listen': { type: 'string' },
      'tunnels-per-cloud': { type: 'string' },
      'allowed-ports': { type: 'string' },
      'pod-ports': { type: 'string' },
      'cloud-destinations': { type: 'string' },
      'cloud-routes': { type: 'string' },
      'service-cidrs': { type: 'string' },
      'kubelet-ports': { type: 'string' },
      'edge-connect-termination': { type: 'string' },
      'terminator-socket': { type: 'string' },
      'sidecar-connect-dial': { type: 'string' },
      'sidecar-capture-port': { type: 'string' },
      'sidecar-tls-dir': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'edge-certificate-signer-ca': { type: 'string' },
      'edge-certificate-lifetime': { type: 'string', default: '24h' },
      'tls-dir': { type: 'string' },
      'admin-tls-dir': { type: 'string' },
      'secure-admin': { type: 'string' },
      'admin-auth': { type: 'string', default: 'certificate' },
      replica: { type: 'string' },
      'leader-election': { type: 'string', default: 'on' },
      'leader-election-namespace': { type: 'string' },
      'leader-election-lease': { type: 'string', default: String(DEFAULT_LEASE.leaseDurationMs / 1000) },
      'tunnel-probe-interval': { type: 'string', default: '30' },
      'tunnel-probe-connect': { type: 'string' },
      'tunnel-probe-tls-dir': { type: 'string' },
      'cloud-tls-dir': { type: 'string' },
      'edge-tls-dir': { type: 'string' },
      'cloud-server-name': { type: 'string' },
      insecure: { type: 'boolean', default: false },
    },
  });
  const sources = [values['nodes-file'] !== undefined, values.kubeconfig !== undefined, values['in-cluster']].filter(Boolean).length;
  if (sources !== 1) throw new UsageError('give exactly one of --nodes-file, --kubeconfig, --in-cluster');
  if (!values['tls-dir'] && !values.insecure) throw new UsageError('--tls-dir is required (or --insecure to run without TLS)');
  if (values['tls-dir'] && values.insecure) throw new UsageError('--tls-dir and --insecure exclude each other');
  const tls: TlsSettings | undefined = values.insecure
    ? undefined
    : {
        cloudDir: values['cloud-tls-dir'] ?? DEFAULT_TLS.cloudDir,
        edgeDir: values['edge-tls-dir'] ?? DEFAULT_TLS.edgeDir,
        cloudServerName: values['cloud-server-name'] ?? DEFAULT_TLS.cloudServerName,
      };
  const settings: Settings = {
    ...DEFAULT_SETTINGS,
    ...(values['tunnel-listen'] && { tunnelListen: hostPort('tunnel-listen', values['tunnel-listen']) }),
    ...(values['tunnel-dial'] && { tunnelDial: values['tunnel-dial'].split(',').map((dial) => hostPort('tunnel-dial', dial.trim())) }),
    ...(values['connect-listen'] && { connectListen: hostPort('connect-listen', values['connect-listen']) }),
    ...(values['tunnels-per-cloud'] && { tunnelsPerCloud: positiveInt('tunnels-per-cloud', values['tunnels-per-cloud']) }),
    ...(values['allowed-ports'] && { allowedPorts: portList('allowed-ports', values['allowed-ports']) }),
    ...(values['pod-ports'] && { podPorts: portList('pod-ports', values['pod-ports']) }),
    ...(values['cloud-destinations'] && { cloudDestinations: cloudDestinationsMode(values['cloud-destinations']) }),
    ...(values['cloud-routes'] && { cloudRoutes: cloudRoutesMode(values['cloud-routes']) }),
    ...(values['service-cidrs'] && { serviceCIDRs: values['service-cidrs'].split(',').map((c) => c.trim()).filter(Boolean) }),
    // A nodes file is the operator's own; a Node's status is written by its kubelet and not trusted.
    kubeletPorts: values['kubelet-ports'] ? portList('kubelet-ports', values['kubelet-ports']) : values['nodes-file'] ? 'any' : DEFAULT_SETTINGS.kubeletPorts,
    ...(values['edge-connect-termination'] && { edgeConnectTermination: terminationMode(values['edge-connect-termination']) }),
    ...(values['terminator-socket'] && { terminatorSocket: values['terminator-socket'] }),
    sidecar: {
      connectDial: values['sidecar-connect-dial'] ? hostPort('sidecar-connect-dial', values['sidecar-connect-dial']) : DEFAULT_SETTINGS.sidecar.connectDial,
      capturePort: values['sidecar-capture-port'] ? port('sidecar-capture-port', values['sidecar-capture-port']) : DEFAULT_SETTINGS.sidecar.capturePort,
      tlsDir: values['sidecar-tls-dir'] ?? DEFAULT_SETTINGS.sidecar.tlsDir,
    },
    tls,
  };
  const xdsListen = hostPort('listen', values.listen);
  const admin = hostPort('admin', values.admin);
  // The admin endpoint shows every route into the edge: beyond loopback only with credentials.
  if (!isLoopback(admin.address)) {
    throw new UsageError(`--admin ${values.admin} is not a loopback address: use --secure-admin ${values.admin} with --admin-tls-dir, so that only clients with credentials reach it`);
  }
  const logger = pino({ level: values['log-level'], base: { component: 'xds' } });
  const registry = new Registry();
  const replicaId = values.replica ?? hostname();
  const election = leaderElection(values, replicaId, logger, registry);
  const running = await serve({
    ...inputSources(values, logger, registry),
    registry,
    settings,
    logger,
    xdsListen: `${xdsListen.address}:${xdsListen.port}`,
    adminHost: admin.address,
    adminPort: admin.port,
    tlsDir: values['tls-dir'],
    secureAdmin: secureAdmin(values),
    replicaId,
    certificateDirs: { xds: values['tls-dir'], admin: values['admin-tls-dir'], probe: values['tunnel-probe-tls-dir'] },
    tunnelHealth: tunnelHealth(values, settings, logger, registry, election),
    leaderElection: election,
    certificates: certificateSigner(values, election, logger, registry),
  });
  const stop = (signal: string): void => {
    logger.info({ signal }, 'shutting down');
    void running.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
