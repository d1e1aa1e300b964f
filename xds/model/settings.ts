// Settings that shape the Envoy resources, independent of which nodes exist. Defaults serve the demo
// (everything on loopback); a deployment overrides the addresses.

import { isIP } from 'node:net';
import { parseCidr } from './cidr.js';
import { DEFAULT_KUBELET_PORT, isValidPort, type InputError } from './node.js';

export interface SocketAddress {
  readonly address: string;
  readonly port: number;
}

/**
 * Mutual TLS on the tunnels and the CONNECT listener. The xDS server never holds a private key: it
 * tells each Envoy which files on its own host to use (SDS over ADS with file references), and Envoy
 * watches those files, so certificates rotate without a restart or a dropped stream.
 */
export interface TlsSettings {
  /** On cloud hosts: tls.crt + tls.key (the cloud's certificate), ca.crt (signs edge node certificates), client-ca.crt (signs CONNECT clients). */
  readonly cloudDir: string;
  /** On edge hosts, "{node}" replaced by the node name: tls.crt + tls.key (DNS SAN = node name), ca.crt (signs the cloud's certificate). */
  readonly edgeDir: string;
  /** The name (DNS or IP SAN) edges require in the cloud's certificate, also sent as SNI. */
  readonly cloudServerName: string;
}

export const DEFAULT_TLS: TlsSettings = {
  cloudDir: '/etc/edge-tunnel/tls',
  edgeDir: '/etc/edge-tunnel/tls',
  cloudServerName: 'cloud.edge-tunnel',
};

/**
 * The sidecar role: an Envoy beside a cloud client that cannot use a CONNECT proxy (metrics-server
 * dials kubelets itself). The pod's iptables rules redirect the client's connections to kubelet ports
 * to the sidecar, which carries each over CONNECT, with mutual TLS, to the cloud Envoy.
 */
export interface SidecarSettings {
  /** Where sidecars reach the cloud Envoy's CONNECT listener (the edge-tunnel-connect Service). */
  readonly connectDial: SocketAddress;
  /** The port on 127.0.0.1 the pod's iptables rules redirect captured connections to. */
  readonly capturePort: number;
  /** On the sidecar's pod: tls.crt + tls.key (a CONNECT client certificate) and ca.crt (signs the cloud's). */
  readonly tlsDir: string;
}

export const DEFAULT_SIDECAR: SidecarSettings = {
  connectDial: { address: '127.0.0.1', port: 15001 },
  capturePort: 15006,
  tlsDir: '/etc/edge-tunnel/sidecar-tls',
};

export interface Settings {
  /** Where the cloud Envoy accepts reverse-tunnel handshakes from edge Envoys. */
  readonly tunnelListen: SocketAddress;
  /**
   * Where edge Envoys dial the cloud: one address per cloud Envoy replica (each replica's own port or
   * name at the L4 load balancer). Every edge holds tunnels to every address, so any replica can reach
   * any node and losing one replica loses no node.
   */
  readonly tunnelDial: readonly SocketAddress[];
  /**
   * Tunnels each edge Envoy holds to each cloud Envoy. Reverse sockets belong to one cloud worker
   * thread, so this must be at least the cloud Envoy's --concurrency or some requests get 503; after
   * reconnects on a weak link Envoy 1.40 sometimes places two tunnels on one worker, so twice the
   * worker count is the safe value (integration/weak-links.test.ts).
   */
  readonly tunnelsPerCloud: number;
  /** Where the cloud Envoy takes HTTP CONNECT from cloud clients (kube-apiserver, Prometheus). */
  readonly connectListen: SocketAddress;
  /** Node ports reachable through a tunnel besides each node's kubelet port (read-only kubelet, exporters). */
  readonly allowedPorts: readonly number[];
  /** The address on the edge host that tunnelled connections are forwarded to. */
  readonly edgeLocalAddress: string;
  /** Seconds between keepalive pings on each tunnel; a dead tunnel is dropped after a few missed. */
  readonly tunnelPingIntervalSeconds: number;
  /** Mutual TLS everywhere; only an explicit insecure mode (`tls: undefined`) serves plaintext. */
  readonly tls: TlsSettings | undefined;
  /** Pod ports reachable through an edge node's tunnel at pod IPs in its pod CIDRs (pod and service proxy); none by default. */
  readonly podPorts: readonly number[];
  /**
   * CONNECT to what belongs to the cluster but not to an edge: Service ClusterIPs (serviceCIDRs and the
   * cluster's ServiceCIDR objects), cloud pods (cloud nodes' pod CIDRs) and cloud nodes (their
   * addresses). kube-apiserver sends its webhooks, aggregated APIs and service proxy this way once its
   * `cluster` egress points here. 'direct' (the default): the cloud Envoy, which runs in the cloud,
   * dials them itself. 'refuse': 404 like any other destination (only for an egress that carries
   * nothing but edge traffic). Destinations outside the cluster are refused either way.
   */
  readonly cloudDestinations: 'direct' | 'refuse';
  /**
   * How the cloud Envoys get the CONNECT routes of edge nodes. 'inline' (the default): every node's
   * virtual host inside the one RouteConfiguration, resent whole on every change (any ADS flavour).
   * 'vhds': each node's virtual host as a resource of its own (VHDS), so one node's change sends one
   * virtual host; needs the cloud Envoys on incremental ADS (agent-bootstrap --xds-api delta).
   */
  readonly cloudRoutes: 'inline' | 'vhds';
  /** Service ClusterIP ranges, in addition to the cluster's ServiceCIDR objects (a fallback for clusters without that API). */
  readonly serviceCIDRs: readonly string[];
  /**
   * The ports a kubelet may report in its Node status (status.daemonEndpoints.kubeletEndpoint.Port).
   * A node's status is written by its own kubelet: any other port is ignored and the first of these
   * used. 'any' trusts the port given (a nodes file, which the operator writes).
   */
  readonly kubeletPorts: readonly number[] | 'any';
  /**
   * Who turns a tunnelled CONNECT into TCP at the edge. 'terminator' (the default): the edge Envoy
   * forwards it over HTTP/2 to the connect-terminator beside it, which passes the kubelet's FIN on as
   * END_STREAM, so nothing is lost when the kubelet closes first. 'envoy': the edge Envoy terminates it
   * itself; Envoy 1.40 then resets the stream on the kubelet's FIN and can drop the tail of a large
   * response (README "Known limitations"). Flip to 'envoy' only with an Envoy that carries upstream
   * half-close for TCP tunnels (envoyproxy/envoy pull request 47378).
   */
  readonly edgeConnectTermination: 'terminator' | 'envoy';
  /** The connect-terminator's Unix socket on each edge host, "{node}" replaced by the node name. */
  readonly terminatorSocket: string;
  readonly sidecar: SidecarSettings;
}

export const DEFAULT_SETTINGS: Settings = {
  tunnelListen: { address: '127.0.0.1', port: 9000 },
  tunnelDial: [{ address: '127.0.0.1', port: 9000 }],
  tunnelsPerCloud: 4,
  connectListen: { address: '127.0.0.1', port: 15001 },
  allowedPorts: [10250, 10255],
  edgeLocalAddress: '127.0.0.1',
  tunnelPingIntervalSeconds: 2,
  tls: DEFAULT_TLS,
  podPorts: [],
  cloudDestinations: 'direct',
  cloudRoutes: 'inline',
  serviceCIDRs: [],
  kubeletPorts: [DEFAULT_KUBELET_PORT],
  edgeConnectTermination: 'terminator',
  terminatorSocket: '/run/edge-tunnel/connect-terminator.sock',
  sidecar: DEFAULT_SIDECAR,
};

export function validateSettings(settings: Settings): InputError[] {
  const errors: InputError[] = [];
  const port = (path: string, value: number): void => {
    if (!isValidPort(value)) errors.push({ path, message: `${value} is not a TCP port (1-65535)` });
  };
  const listenAddress = (path: string, address: string): void => {
    if (isIP(address) === 0) errors.push({ path, message: `"${address}" is not an IP address (Envoy listens on IPs)` });
  };
  listenAddress('tunnelListen.address', settings.tunnelListen.address);
  listenAddress('connectListen.address', settings.connectListen.address);
  settings.tunnelDial.forEach((dial, i) => {
    if (dial.address === '') errors.push({ path: `tunnelDial[${i}].address`, message: 'must not be empty' });
  });
  const overlap = settings.podPorts.filter((p) => settings.allowedPorts.includes(p));
  if (overlap.length > 0) {
    errors.push({ path: 'podPorts', message: `${overlap.join(', ')} also in allowedPorts: a port is either a node port or a pod port` });
  }
  port('tunnelListen.port', settings.tunnelListen.port);
  if (settings.tunnelDial.length === 0) errors.push({ path: 'tunnelDial', message: 'needs at least one address' });
  settings.tunnelDial.forEach((dial, i) => port(`tunnelDial[${i}].port`, dial.port));
  port('connectListen.port', settings.connectListen.port);
  settings.allowedPorts.forEach((p, i) => port(`allowedPorts[${i}]`, p));
  settings.podPorts.forEach((p, i) => port(`podPorts[${i}]`, p));
  // Port 1 carries the tunnel health probe (translate/names.ts: TUNNEL_HEALTH_PORT).
  for (const [path, ports] of [['allowedPorts', settings.allowedPorts], ['podPorts', settings.podPorts], ['kubeletPorts', settings.kubeletPorts === 'any' ? [] : settings.kubeletPorts]] as const) {
    if (ports.includes(1)) errors.push({ path, message: 'port 1 is reserved for tunnel health probes' });
  }
  if (settings.cloudRoutes !== 'inline' && settings.cloudRoutes !== 'vhds') {
    errors.push({ path: 'cloudRoutes', message: `must be "inline" or "vhds", not "${String(settings.cloudRoutes)}"` });
  }
  if (settings.cloudDestinations !== 'refuse' && settings.cloudDestinations !== 'direct') {
    errors.push({ path: 'cloudDestinations', message: `must be "direct" or "refuse", not "${String(settings.cloudDestinations)}"` });
  }
  settings.serviceCIDRs.forEach((text, i) => {
    if (parseCidr(text) === undefined) errors.push({ path: `serviceCIDRs[${i}]`, message: `"${text}" is not a CIDR such as 10.96.0.0/12` });
  });
  if (settings.kubeletPorts !== 'any') {
    if (settings.kubeletPorts.length === 0) errors.push({ path: 'kubeletPorts', message: 'needs at least one port' });
    settings.kubeletPorts.forEach((p, i) => port(`kubeletPorts[${i}]`, p));
  }
  if (settings.edgeConnectTermination !== 'terminator' && settings.edgeConnectTermination !== 'envoy') {
    errors.push({ path: 'edgeConnectTermination', message: `must be "terminator" or "envoy", not "${String(settings.edgeConnectTermination)}"` });
  }
  if (!settings.terminatorSocket.startsWith('/')) errors.push({ path: 'terminatorSocket', message: 'must be an absolute path' });
  if (settings.sidecar.connectDial.address === '') errors.push({ path: 'sidecar.connectDial.address', message: 'must not be empty' });
  port('sidecar.connectDial.port', settings.sidecar.connectDial.port);
  port('sidecar.capturePort', settings.sidecar.capturePort);
  if (!settings.sidecar.tlsDir.startsWith('/')) errors.push({ path: 'sidecar.tlsDir', message: 'must be an absolute path' });
  if (!Number.isInteger(settings.tunnelsPerCloud) || settings.tunnelsPerCloud < 1 || settings.tunnelsPerCloud > 64) {
    errors.push({ path: 'tunnelsPerCloud', message: `${settings.tunnelsPerCloud} must be a whole number from 1 to 64` });
  }
  if (settings.tls) {
    for (const key of ['cloudDir', 'edgeDir', 'cloudServerName'] as const) {
      if (!settings.tls[key]) errors.push({ path: `tls.${key}`, message: 'must not be empty' });
    }
    if (settings.tls.cloudDir && !settings.tls.cloudDir.startsWith('/')) errors.push({ path: 'tls.cloudDir', message: 'must be an absolute path' });
    if (settings.tls.edgeDir && !settings.tls.edgeDir.startsWith('/')) errors.push({ path: 'tls.edgeDir', message: 'must be an absolute path' });
  }
  if (!(settings.tunnelPingIntervalSeconds > 0 && Number.isFinite(settings.tunnelPingIntervalSeconds))) {
    errors.push({ path: 'tunnelPingIntervalSeconds', message: 'must be more than 0' });
  }
  return errors;
}

/** The ports a node accepts tunnelled connections on: its kubelet port plus the allowlist, sorted. */
export function allowedPortsOf(kubeletPort: number, settings: Settings): number[] {
  return [...new Set([kubeletPort, ...settings.allowedPorts])].sort((a, b) => a - b);
}
