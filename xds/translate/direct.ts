// Routes the cloud Envoy serves by dialing the destination itself, because it belongs to the cluster
// but not to an edge: Service ClusterIPs, cloud pods and cloud nodes (setting cloudDestinations:
// direct). Only addresses inside those ranges match, so the proxy still dials nothing outside the
// cluster: the routes decide what is reachable, the client only picks among them.

import { isIP } from 'node:net';
import type { Any } from '../../envoy/generated/google/protobuf/any.js';
import type { DeepPartial } from '../../envoy/generated/envoy/config/core/v3/base.js';
import type { Route, RouteAction, VirtualHost } from '../../envoy/generated/envoy/config/route/v3/route_components.js';
import { Cluster_DiscoveryType, Cluster_LbPolicy } from '../../envoy/generated/envoy/config/cluster/v3/cluster.js';
import { pack } from '../../envoy/registry.js';
import { routingHosts, type TunnelNode } from '../model/node.js';
import { allowedPortsOf, type Settings } from '../model/settings.js';
import type { CloudRange } from './admission.js';
import { seconds } from './common.js';
import { CLOUD, authority } from './names.js';
import type { RoutedRange } from './ranges.js';

/** Dials the address:port in the CONNECT authority, which the route has already checked. */
export function directCluster(): Any {
  return pack('envoy.config.cluster.v3.Cluster', {
    name: CLOUD.directCluster,
    type: Cluster_DiscoveryType.ORIGINAL_DST,
    lbPolicy: Cluster_LbPolicy.CLUSTER_PROVIDED,
    connectTimeout: seconds(5),
    originalDstLbConfig: { useHttpHeader: true, httpHeaderName: ':authority' },
  });
}

function directAction(hostRewrite?: string): DeepPartial<RouteAction> {
  return {
    cluster: CLOUD.directCluster,
    timeout: seconds(0),
    ...(hostRewrite !== undefined && { hostRewriteLiteral: hostRewrite }),
    upgradeConfigs: [{ upgradeType: 'CONNECT', connectConfig: {} }],
  };
}

/** Every cloud range, any port, dialed at the address asked for. */
export function directRanges(cloudRanges: readonly CloudRange[]): RoutedRange[] {
  return cloudRanges.map(({ cidr }) => ({ cidr, ports: 'any', route: (match): DeepPartial<Route> => ({ match, route: directAction() }) }));
}

/**
 * Cloud nodes by name (and Hostname addresses), on their kubelet port and the allowlist: the authority
 * is rewritten to the node's first IPv4 address before the cluster reads it. A node without one is not
 * reachable by name.
 */
export function directNameVirtualHosts(cloudNodes: readonly TunnelNode[], settings: Settings): DeepPartial<VirtualHost>[] {
  return cloudNodes.flatMap((node) => {
    const ip = node.addresses.find((a) => isIP(a) === 4);
    const names = routingHosts(node).filter((host) => isIP(host) === 0);
    if (ip === undefined || names.length === 0) return [];
    return allowedPortsOf(node.kubeletPort, settings).map((port) => ({
      name: `direct_${node.name}_${port}`,
      domains: names.map((host) => authority(host, port)),
      routes: [{ match: { connectMatcher: {} }, route: directAction(authority(ip, port)) }],
    }));
  });
}
