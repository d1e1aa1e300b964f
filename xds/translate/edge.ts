// One edge Envoy's resources: the rc:// listener that dials reverse tunnels to the cloud and terminates
// CONNECT arriving on them, the allowlist of local ports (RDS, so changing it never re-dials tunnels),
// the cluster that reaches the cloud, and one local cluster per allowed port.

import type { Any } from '../../envoy/generated/google/protobuf/any.js';
import type { DeepPartial } from '../../envoy/generated/envoy/config/core/v3/base.js';
import type { VirtualHost } from '../../envoy/generated/envoy/config/route/v3/route_components.js';
import { HttpConnectionManager_CodecType } from '../../envoy/generated/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import { pack } from '../../envoy/registry.js';
import { routingHosts, type TunnelNode } from '../model/node.js';
import { allowedPortsOf, type Settings } from '../model/settings.js';
import { STREAM_IDLE_TIMEOUT_S, adsConfigSource, routerFilter, seconds, fixedEndpointsCluster } from './common.js';
import { EDGE, authority, localPortCluster } from './names.js';

import { SECRETS, sanMatcher, upstreamTls } from './tls.js';
import { podVirtualHosts } from './pods.js';
import { Cluster_DiscoveryType, Cluster_LbPolicy } from '../../envoy/generated/envoy/config/cluster/v3/cluster.js';
import { isIP } from 'node:net';

/** The reverse-connection address: rc://<node>:<cluster>:<tenant>@<cloud cluster>:<tunnels per cloud host>. */
export function reverseConnectionAddress(node: string, settings: Settings): string {
  return `rc://${node}:${EDGE.tunnelClusterId}:${EDGE.tunnelTenant}@${EDGE.cloudCluster}:${settings.tunnelsPerCloud}`;
}

export function tunnelListener(node: TunnelNode, settings: Settings): Any {
  const hcm = pack('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
    statPrefix: 'tunnel_in',
    streamIdleTimeout: seconds(STREAM_IDLE_TIMEOUT_S),
    codecType: HttpConnectionManager_CodecType.HTTP2,
    http2ProtocolOptions: { allowConnect: true },
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
 * CONNECT to an allowed port of this node (by its name or an address) is terminated here and forwarded
 * as raw TCP to the local service. Exact hosts, not "*:port": a pod IP with the same port must reach
 * the pod routes below, not the node's own service.
 */
function localPortVirtualHost(node: TunnelNode, port: number): DeepPartial<VirtualHost> {
  return {
    name: `port_${port}`,
    domains: routingHosts(node).map((host) => authority(host, port)),
    routes: [
      {
        match: { connectMatcher: {} },
        route: {
          cluster: localPortCluster(port),
          timeout: seconds(0),
          upgradeConfigs: [{ upgradeType: 'CONNECT', connectConfig: {} }],
        },
      },
    ],
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
    virtualHosts: [...ports.map((port) => localPortVirtualHost(node, port)), ...edgePodVirtualHosts(node, settings), refuseOtherPorts()],
  });
}

/**
 * The edge's own check for pod traffic: only its own pod ranges and the allowlisted pod ports; the
 * CONNECT is terminated here and the pod dialed at the address the (checked) authority names.
 */
function edgePodVirtualHosts(node: TunnelNode, settings: Settings): DeepPartial<VirtualHost>[] {
  return podVirtualHosts([node], settings.podPorts, (_node, match) => ({
    match,
    route: { cluster: EDGE.podCluster, timeout: seconds(0), upgradeConfigs: [{ upgradeType: 'CONNECT', connectConfig: {} }] },
  }));
}

/** Needed only when the node has routable pod ranges and pod ports are allowlisted. */
export function hasPodRoutes(node: TunnelNode, settings: Settings): boolean {
  return edgePodVirtualHosts(node, settings).length > 0;
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
  const tls = settings.tls;
  return pack('envoy.config.cluster.v3.Cluster', {
    ...fixedEndpointsCluster(EDGE.cloudCluster, settings.tunnelDial, 5),
    transportSocket: tls
      ? upstreamTls({
          certificate: SECRETS.edgeIdentity,
          trust: SECRETS.cloudCa,
          requireSans: [sanMatcher(tls.cloudServerName)],
          sni: isIP(tls.cloudServerName) ? '' : tls.cloudServerName,
        })
      : undefined,
  });
}

export function localPortClusterOf(port: number, settings: Settings): Any {
  const target = { address: settings.edgeLocalAddress, port };
  return pack('envoy.config.cluster.v3.Cluster', fixedEndpointsCluster(localPortCluster(port), [target], 2));
}
