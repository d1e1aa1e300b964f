// One edge Envoy's resources: the rc:// listener that dials reverse tunnels to the cloud and takes
// CONNECT arriving on them, the allowlist of local ports (RDS, so changing it never re-dials tunnels),
// the cluster that reaches the cloud, and the way to the local targets: the connect-terminator (by
// default) or, with edgeConnectTermination 'envoy', one local cluster per allowed port.

import type { Any } from '../../envoy/generated/google/protobuf/any.js';
import type { DeepPartial } from '../../envoy/generated/envoy/config/core/v3/base.js';
import type { VirtualHost } from '../../envoy/generated/envoy/config/route/v3/route_components.js';
import { HttpConnectionManager_CodecType } from '../../envoy/generated/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import { pack } from '../../envoy/registry.js';
import { routingHosts, type TunnelNode } from '../model/node.js';
import { allowedPortsOf, type Settings } from '../model/settings.js';
import { STREAM_IDLE_TIMEOUT_S, TUNNEL_WINDOWS, adsConfigSource, routerFilter, seconds, fixedEndpointsCluster } from './common.js';
import { EDGE, TUNNEL_HEALTH_PORT, authority, localPortCluster } from './names.js';
import type { RouteAction } from '../../envoy/generated/envoy/config/route/v3/route_components.js';

import { SECRETS, toCloudTls } from './tls.js';
import { podRangesOf, rangeVirtualHosts } from './ranges.js';
import { Cluster_DiscoveryType, Cluster_LbPolicy } from '../../envoy/generated/envoy/config/cluster/v3/cluster.js';

/** The reverse-connection address: rc://<node>:<cluster>:<tenant>@<cloud cluster>:<tunnels per cloud host>. */
export function reverseConnectionAddress(node: string, settings: Settings): string {
  return `rc://${node}:${EDGE.tunnelClusterId}:${EDGE.tunnelTenant}@${EDGE.cloudCluster}:${settings.tunnelsPerCloud}`;
}

export function tunnelListener(node: TunnelNode, settings: Settings): Any {
  const hcm = pack('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
    statPrefix: 'tunnel_in',
    streamIdleTimeout: seconds(STREAM_IDLE_TIMEOUT_S),
    codecType: HttpConnectionManager_CodecType.HTTP2,
    http2ProtocolOptions: { allowConnect: true, ...TUNNEL_WINDOWS },
    upgradeConfigs: [{ upgradeType: 'CONNECT' }],
    rds: { configSource: adsConfigSource(), routeConfigName: EDGE.localRoutes },
    httpFilters: [routerFilter()],
  });
  return pack('envoy.config.listener.v3.Listener', {
    name: EDGE.tunnelListener,
    listenerFiltersTimeout: seconds(0),
    address: {
      socketAddress: {
        address: reverseConnectionAddress(node.name, settings),
        portValue: 0,
        resolverName: 'envoy.resolvers.reverse_connection',
      },
    },
    filterChains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typedConfig: hcm }] }],
  });
}

/**
 * Where a checked CONNECT goes. With the terminator: forwarded as CONNECT over HTTP/2, its authority
 * rewritten to the local target when there is one (a pod's authority is its target already). With
 * Envoy terminating: turned into TCP here, to the given cluster.
 */
function connectAction(settings: Settings, envoyCluster: string, localTarget?: string): DeepPartial<RouteAction> {
  if (settings.edgeConnectTermination === 'terminator') {
    return {
      cluster: EDGE.terminatorCluster,
      timeout: seconds(0),
      ...(localTarget !== undefined && { hostRewriteLiteral: localTarget }),
      upgradeConfigs: [{ upgradeType: 'CONNECT' }],
    };
  }
  return { cluster: envoyCluster, timeout: seconds(0), upgradeConfigs: [{ upgradeType: 'CONNECT', connectConfig: {} }] };
}

/**
 * CONNECT to an allowed port of this node (by its name or an address) reaches the local service.
 * Exact hosts, not "*:port": a pod IP with the same port must reach the pod routes below, not the
 * node's own service.
 */
function localPortVirtualHost(node: TunnelNode, port: number, settings: Settings): DeepPartial<VirtualHost> {
  return {
    name: `port_${port}`,
    domains: routingHosts(node).map((host) => authority(host, port)),
    routes: [{ match: { connectMatcher: {} }, route: connectAction(settings, localPortCluster(port), authority(settings.edgeLocalAddress, port)) }],
  };
}

/** The tunnel health probe (`CONNECT <node>:1`): answered here, so it proves cloud → tunnel → edge Envoy. */
function tunnelHealth(node: TunnelNode): DeepPartial<VirtualHost> {
  return {
    name: 'tunnel_health',
    domains: [authority(node.name, TUNNEL_HEALTH_PORT)],
    routes: [{ match: { connectMatcher: {} }, directResponse: { status: 200 } }],
  };
}

/** The edge's own check: whatever the cloud forwards, ports off the allowlist are refused here too. */
function refuseOtherPorts(): DeepPartial<VirtualHost> {
  return {
    name: 'refused',
    domains: ['*'],
    routes: [
      {
        match: { connectMatcher: {} },
        directResponse: { status: 403, body: { inlineString: 'edge-tunnel: port not allowlisted on this node\n' } },
      },
    ],
  };
}

export function localRoutes(node: TunnelNode, settings: Settings): Any {
  const ports = allowedPortsOf(node.kubeletPort, settings);
  return pack('envoy.config.route.v3.RouteConfiguration', {
    name: EDGE.localRoutes,
    virtualHosts: [
      ...ports.map((port) => localPortVirtualHost(node, port, settings)),
      ...edgePodVirtualHosts(node, settings),
      tunnelHealth(node),
      refuseOtherPorts(),
    ],
  });
}

/**
 * The edge's own check for pod traffic: only its own pod ranges and the allowlisted pod ports; the pod
 * is dialed at the address the (checked) authority names.
 */
function edgePodVirtualHosts(node: TunnelNode, settings: Settings): DeepPartial<VirtualHost>[] {
  return rangeVirtualHosts(podRangesOf(node, settings.podPorts, (match) => ({ match, route: connectAction(settings, EDGE.podCluster) })));
}

/** Needed only when the node has routable pod ranges and pod ports are allowlisted. */
export function hasPodRoutes(node: TunnelNode, settings: Settings): boolean {
  return edgePodVirtualHosts(node, settings).length > 0;
}

/**
 * The connect-terminator beside this edge Envoy, on a Unix socket only the two of them share. HTTP/2
 * windows of one tunnel stream's size: the terminator's output waits in its own socket, not in Envoy.
 */
export function terminatorCluster(node: string, settings: Settings): Any {
  return pack('envoy.config.cluster.v3.Cluster', {
    name: EDGE.terminatorCluster,
    type: Cluster_DiscoveryType.STATIC,
    connectTimeout: seconds(2),
    loadAssignment: {
      clusterName: EDGE.terminatorCluster,
      endpoints: [{ lbEndpoints: [{ endpoint: { address: { pipe: { path: terminatorSocketOf(node, settings) } } } }] }],
    },
    typedExtensionProtocolOptions: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': pack('envoy.extensions.upstreams.http.v3.HttpProtocolOptions', {
        explicitHttpConfig: { http2ProtocolOptions: { ...TUNNEL_WINDOWS } },
      }),
    },
  });
}

export function terminatorSocketOf(node: string, settings: Settings): string {
  return settings.terminatorSocket.replaceAll('{node}', node);
}

/** Dials the address in the CONNECT authority, which the pod routes have already checked. */
export function podCluster(): Any {
  return pack('envoy.config.cluster.v3.Cluster', {
    name: EDGE.podCluster,
    type: Cluster_DiscoveryType.ORIGINAL_DST,
    lbPolicy: Cluster_LbPolicy.CLUSTER_PROVIDED,
    connectTimeout: seconds(2),
    originalDstLbConfig: { useHttpHeader: true, httpHeaderName: ':authority' },
  });
}

/** The way to the cloud's tunnel listener; with TLS the edge proves its node and checks the cloud's name. */
export function cloudCluster(settings: Settings): Any {
  return pack('envoy.config.cluster.v3.Cluster', {
    ...fixedEndpointsCluster(EDGE.cloudCluster, settings.tunnelDial, 5),
    transportSocket: toCloudTls(settings.tls, SECRETS.edgeIdentity),
  });
}

export function localPortClusterOf(port: number, settings: Settings): Any {
  const target = { address: settings.edgeLocalAddress, port };
  return pack('envoy.config.cluster.v3.Cluster', fixedEndpointsCluster(localPortCluster(port), [target], 2));
}
