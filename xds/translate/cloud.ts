// The cloud Envoy's resources: the tunnel handshake listener, the CONNECT listener, the per-node
// routes (RDS, so node changes never touch a listener) and the reverse-connection cluster.

import type { Any } from '../../envoy/generated/google/protobuf/any.js';
import type { DeepPartial } from '../../envoy/generated/envoy/config/core/v3/base.js';
import { VirtualHost, type Route } from '../../envoy/generated/envoy/config/route/v3/route_components.js';
import { RouteConfiguration } from '../../envoy/generated/envoy/config/route/v3/route.js';
import type { AccessLog } from '../../envoy/generated/envoy/config/accesslog/v3/accesslog.js';
import { Cluster_LbPolicy } from '../../envoy/generated/envoy/config/cluster/v3/cluster.js';
import { pack, typeUrlOf } from '../../envoy/registry.js';
import { routingHosts, type TunnelNode } from '../model/node.js';
import { allowedPortsOf, type Settings } from '../model/settings.js';
import { STREAM_IDLE_TIMEOUT_S, TUNNEL_WINDOWS, adsConfigSource, routerFilter, seconds, socketAddress } from './common.js';
import { CLOUD, TUNNEL_HEALTH_PORT, TUNNEL_HOST_ID_FORMAT, authority, nodeVirtualHost } from './names.js';
import type { Admission } from './admission.js';
import { directNameVirtualHosts, directRanges } from './direct.js';
import { podRangesOf, rangeVirtualHosts } from './ranges.js';
import { tunnelRoute } from './tunnel-route.js';
import { EDGE_IDENTITY_URI_PREFIX, SECRETS, downstreamTls } from './tls.js';
import { SubjectAltNameMatcher_SanType } from '../../envoy/generated/envoy/extensions/transport_sockets/tls/v3/common.js';

/**
 * With TLS, only certificates from the edge node CA that name an edge (URI SAN) complete the handshake,
 * and the tunnel's node id must equal the certificate's DNS SAN: a node can only ever serve itself.
 */
export function handshakeListener(settings: Settings): Any {
  const tls = settings.tls !== undefined;
  return pack('envoy.config.listener.v3.Listener', {
    name: CLOUD.handshakeListener,
    address: socketAddress(settings.tunnelListen),
    accessLog: [tunnelAuditLog()],
    filterChains: [
      {
        transportSocket: tls
          ? downstreamTls({
              certificate: SECRETS.cloudIdentity,
              trust: SECRETS.edgeNodeCa,
              requireSans: [{ sanType: SubjectAltNameMatcher_SanType.URI, matcher: { prefix: EDGE_IDENTITY_URI_PREFIX } }],
            })
          : undefined,
        filters: [
          {
            name: 'envoy.filters.network.reverse_tunnel',
            typedConfig: pack('envoy.extensions.filters.network.reverse_tunnel.v3.ReverseTunnel', {
              pingInterval: seconds(settings.tunnelPingIntervalSeconds),
              validation: tls ? { nodeIdFormat: '%DOWNSTREAM_PEER_DNS_SAN%', emitDynamicMetadata: true } : undefined,
            }),
          },
        ],
      },
    ],
  });
}

/**
 * One JSON line per tunnel connection on the cloud Envoy's stdout: who dialed (the certificate's names),
 * from where, for how long, and the reverse-tunnel filter's verdict. An impostor's attempt shows as a
 * certificate naming one node and a short connection that never became a tunnel.
 */
function tunnelAuditLog(): DeepPartial<AccessLog> {
  return {
    name: 'envoy.access_loggers.stdout',
    typedConfig: pack('envoy.extensions.access_loggers.stream.v3.StdoutAccessLog', {
      logFormat: {
        jsonFormat: {
          event: 'tunnel_connection',
          peer_dns_san: '%DOWNSTREAM_PEER_DNS_SAN%',
          peer_uri_san: '%DOWNSTREAM_PEER_URI_SAN%',
          remote: '%DOWNSTREAM_REMOTE_ADDRESS%',
          start: '%START_TIME%',
          duration_ms: '%DURATION%',
          bytes_received: '%BYTES_RECEIVED%',
          bytes_sent: '%BYTES_SENT%',
          tunnel: '%DYNAMIC_METADATA(envoy.filters.network.reverse_tunnel)%',
          termination: '%CONNECTION_TERMINATION_DETAILS%',
        },
      },
    }),
  };
}

/** See connectListener: how long a client that does not close is given to read the end. */
const DELAYED_CLOSE_S = 1;

export function connectListener(settings: Settings): Any {
  const hcm = pack('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
    statPrefix: 'connect_egress',
    streamIdleTimeout: seconds(STREAM_IDLE_TIMEOUT_S),
    // When the edge ends a tunnelled stream, Envoy writes every byte to the client's socket, stops
    // reading it and waits this long for the client to close before closing itself (HTTP/1.1 CONNECT
    // has no half-close in Envoy 1.40). A socket closed with unread input is reset by the kernel, and
    // the reset throws away whatever the client had not yet received, so the wait must outlast a busy
    // client's reading of the tail: 0 lost 176 KiB of 1 MiB for a client still uploading, and 40 ms
    // (tried for a prompt end) failed under CI load, once as a raw client's reset and, most likely the
    // same way, once as `kubectl cp` ending in `unexpected EOF`.
    // Real clients do not wait for it: kube-apiserver, Prometheus and metrics-server speak TLS to
    // the kubelet and close as soon as its close_notify arrives. Only a raw client that waits for the
    // FIN sees the end up to this late.
    delayedCloseTimeout: seconds(DELAYED_CLOSE_S),
    upgradeConfigs: [{ upgradeType: 'CONNECT' }],
    rds: { configSource: adsConfigSource(), routeConfigName: CLOUD.connectRoutes },
    httpFilters: [routerFilter()],
  });
  return pack('envoy.config.listener.v3.Listener', {
    name: CLOUD.connectListener,
    address: socketAddress(settings.connectListen),
    filterChains: [
      {
        // A client certificate from the CONNECT client CA is required: this port is no open proxy.
        transportSocket: settings.tls ? downstreamTls({ certificate: SECRETS.cloudIdentity, trust: SECRETS.connectClientCa }) : undefined,
        filters: [{ name: 'envoy.filters.network.http_connection_manager', typedConfig: hcm }],
      },
    ],
  });
}

/** One virtual host per edge node: its name and every address, each with each allowed port. */
function nodeVirtualHostOf(node: TunnelNode, settings: Settings): DeepPartial<VirtualHost> {
  const ports = allowedPortsOf(node.kubeletPort, settings);
  return {
    name: nodeVirtualHost(node.name),
    domains: [...routingHosts(node).flatMap((host) => ports.map((port) => authority(host, port))), authority(node.name, TUNNEL_HEALTH_PORT)],
    routes: [tunnelRoute(node.name)],
  };
}

/**
 * Everything no route claims is refused at once with a body that says why, so a client never hangs and
 * the proxy never dials anything it was not configured for. Plain HTTP requests are refused too: this
 * listener is a CONNECT proxy, nothing else.
 */
function refusalRoutes(): DeepPartial<Route>[] {
  return [
    {
      match: { connectMatcher: {} },
      directResponse: {
        status: 404,
        body: { inlineString: 'edge-tunnel: destination is neither an allowlisted port of a known edge node nor in the cluster\n' },
      },
    },
    {
      match: { prefix: '/' },
      directResponse: { status: 405, body: { inlineString: 'edge-tunnel: only CONNECT is served here\n' } },
    },
  ];
}

/** One encoded virtual host; the route configuration's bytes are these, joined (see connectRoutes). */
function encodedVirtualHost(host: DeepPartial<VirtualHost>): Uint8Array {
  return VirtualHost.encode(VirtualHost.fromPartial(host)).finish();
}

/**
 * An edge node's virtual host, encoded. Served by VHDS its name is `connect_routes/<host>`: Envoy
 * files a VirtualHost resource under the route configuration its name begins with, and removes it by
 * that name.
 */
export function nodeVirtualHostBytes(node: TunnelNode, settings: Settings): Uint8Array {
  const host = nodeVirtualHostOf(node, settings);
  return encodedVirtualHost(settings.cloudRoutes === 'vhds' ? { ...host, name: vhdsName(host.name ?? '') } : host);
}

/** The VHDS resource (and virtual host) name of a virtual host of the CONNECT routes. */
export function vhdsName(host: string): string {
  return `${CLOUD.connectRoutes}/${host}`;
}

/**
 * Served by VHDS, the CONNECT routes always hold one virtual host at least: Envoy does not finish
 * initializing a route configuration whose VHDS sent nothing for it (a fleet without edges). It
 * matches no authority a client can send.
 */
export const VHDS_PLACEHOLDER = vhdsName('no-edge-nodes');

export function vhdsPlaceholder(): Uint8Array {
  return encodedVirtualHost({ name: VHDS_PLACEHOLDER, domains: ['no-edge-nodes.edge-tunnel.invalid:1'], routes: refusalRoutes() });
}

/** Field 2 of RouteConfiguration (virtual_hosts), length-delimited: its tag byte. */
const VIRTUAL_HOSTS_TAG = (2 << 3) | 2;

function varint(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  while (rest > 0x7f) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return bytes;
}

/**
 * Edge nodes by name and address (exact domains), cloud nodes by name, then address ranges: edge pod
 * CIDRs down their node's tunnels, cloud ranges dialed directly. Anything else: refused.
 *
 * Built from encoded virtual hosts, joined: a RouteConfiguration is its name (field 1) followed by each
 * virtual host as field 2, exactly what encoding the whole message writes, so an edge node's virtual
 * host can be encoded once (`nodeHost`, memoized by the caller) rather than on every change.
 */
export function connectRoutes(admission: Admission, settings: Settings, nodeHost: (node: TunnelNode) => Uint8Array = (node) => nodeVirtualHostBytes(node, settings)): Any {
  const direct = settings.cloudDestinations === 'direct';
  const ranges = [
    ...admission.edgeNodes.flatMap((node) => podRangesOf(node, settings.podPorts, (match) => tunnelRoute(node.name, match))),
    ...(direct ? directRanges(admission.cloudRanges) : []),
  ];
  // With VHDS the edge nodes' virtual hosts are resources of their own (translate.ts), not in here.
  const vhds = settings.cloudRoutes === 'vhds';
  const hosts = [
    ...(vhds ? [] : admission.edgeNodes.map(nodeHost)),
    ...[...(direct ? directNameVirtualHosts(admission.cloudNodes, settings) : []), ...rangeVirtualHosts(ranges, refusalRoutes()), { name: 'refused', domains: ['*'], routes: refusalRoutes() }].map(encodedVirtualHost),
  ];
  const head = RouteConfiguration.encode(RouteConfiguration.fromPartial({ name: CLOUD.connectRoutes })).finish();
  // vhds is field 9: after the virtual hosts (field 2), where encoding the whole message puts it.
  const tail = vhds ? RouteConfiguration.encode(RouteConfiguration.fromPartial({ vhds: { configSource: adsConfigSource() } })).finish() : new Uint8Array();
  const parts: Uint8Array[] = [head];
  for (const host of hosts) parts.push(Uint8Array.from([VIRTUAL_HOSTS_TAG, ...varint(host.length)]), host);
  parts.push(tail);
  return { typeUrl: typeUrlOf('envoy.config.route.v3.RouteConfiguration'), value: Buffer.concat(parts) };
}

/**
 * Keepalive on tunnels in use: a ping every 5 s, the tunnel dropped when no frame at all arrives for
 * 10 s after one (Envoy extends the wait whenever any frame arrives, so a busy slow link is not cut).
 */
const TUNNEL_KEEPALIVE_INTERVAL_S = 5;
const TUNNEL_KEEPALIVE_TIMEOUT_S = 10;

export function tunnelCluster(): Any {
  return pack('envoy.config.cluster.v3.Cluster', {
    name: CLOUD.tunnelCluster,
    connectTimeout: seconds(5),
    lbPolicy: Cluster_LbPolicy.CLUSTER_PROVIDED,
    clusterType: {
      name: 'envoy.clusters.reverse_connection',
      typedConfig: pack('envoy.extensions.clusters.reverse_connection.v3.ReverseConnectionClusterConfig', {
        cleanupInterval: seconds(60),
        hostIdFormat: TUNNEL_HOST_ID_FORMAT,
      }),
    },
    // Reverse tunnels carry HTTP/2 only; CONNECT streams are multiplexed on them. The cloud pings a
    // tunnel only while it idles in the pool; once a tunnel has carried a stream only HTTP/2 keepalive
    // notices that a weak link went silent (no FIN, no RST), so CONNECT fails fast instead of hanging.
    typedExtensionProtocolOptions: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': pack(
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        {
          explicitHttpConfig: {
            http2ProtocolOptions: {
              ...TUNNEL_WINDOWS,
              connectionKeepalive: { interval: seconds(TUNNEL_KEEPALIVE_INTERVAL_S), timeout: seconds(TUNNEL_KEEPALIVE_TIMEOUT_S) },
            },
          },
        },
      ),
    },
  });
}
