// Names of the Envoy resources edge-tunnel generates: one place, so translator, bootstrap and tests agree.

export const CLOUD = {
  handshakeListener: 'tunnel_handshake',
  connectListener: 'connect_egress',
  connectRoutes: 'connect_routes',
  tunnelCluster: 'edge_tunnels',
  /** Dials cluster destinations that are not an edge's (cloudDestinations: direct). */
  directCluster: 'cloud_direct',
} as const;

export const EDGE = {
  tunnelListener: 'reverse_tunnel',
  localRoutes: 'local_ports',
  cloudCluster: 'cloud_tunnel',
  /** Dials pods at the address a checked CONNECT authority names. */
  podCluster: 'local_pods',
  /** The connect-terminator beside the edge Envoy (edgeConnectTermination 'terminator'). */
  terminatorCluster: 'connect_terminator',
  /** Tunnel ids carry a cluster id and a tenant; edge-tunnel uses one of each. */
  tunnelClusterId: 'edge',
  tunnelTenant: 'default',
} as const;

export const SIDECAR = {
  /** Where the pod's iptables rules redirect captured connections. */
  captureListener: 'sidecar_capture',
  /** The cloud Envoy's CONNECT listener. */
  connectCluster: 'cloud_connect',
} as const;

/** The static cluster in every bootstrap that reaches the xDS server. */
export const XDS_CLUSTER = 'xds_server';

/** How the reverse-connection cluster learns the chosen edge node: the name of the route (see tunnel-route.ts). */
export const TUNNEL_HOST_ID_FORMAT = '%ROUTE_NAME%';

export function localPortCluster(port: number): string {
  return `local_${port}`;
}

export function nodeVirtualHost(node: string): string {
  return `node_${node}`;
}

/**
 * `CONNECT <node name>:1` is a tunnel health probe: the cloud routes it down the node's tunnels like any
 * CONNECT to the node, and the edge Envoy answers it 200 itself, touching no local service. Port 1 is
 * reserved for it (settings refuse it as a node or pod port).
 */
export const TUNNEL_HEALTH_PORT = 1;

/** Host:port as an HTTP authority, with IPv6 literals bracketed as CONNECT request targets have them. */
export function authority(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
