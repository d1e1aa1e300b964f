// Optional direct routes to cloud nodes (setting nonEdgeNodes: direct): the cloud Envoy terminates the
// CONNECT and dials the node itself. The destination is written by the route, never taken from the
// client, so only known cloud nodes' IP addresses and allowlisted ports are reachable this way.

import { isIP } from 'node:net';
import type { Any } from '../../envoy/generated/google/protobuf/any.js';
import type { DeepPartial } from '../../envoy/generated/envoy/config/core/v3/base.js';
import type { VirtualHost } from '../../envoy/generated/envoy/config/route/v3/route_components.js';
import { Cluster_DiscoveryType, Cluster_LbPolicy } from '../../envoy/generated/envoy/config/cluster/v3/cluster.js';
import { pack } from '../../envoy/registry.js';
import { routingHosts, type TunnelNode } from '../model/node.js';
import { allowedPortsOf, type Settings } from '../model/settings.js';
import { seconds } from './common.js';
import { CLOUD, authority } from './names.js';
import { routeSettingHeader } from './tunnel-route.js';

const ORIGINAL_DST_HEADER = 'x-envoy-original-dst-host';

export function directCluster(): Any {
  return pack('envoy.config.cluster.v3.Cluster', {
    name: CLOUD.directCluster,
    type: Cluster_DiscoveryType.ORIGINAL_DST,
    lbPolicy: Cluster_LbPolicy.CLUSTER_PROVIDED,
    connectTimeout: seconds(5),
    originalDstLbConfig: { useHttpHeader: true },
  });
}

/** One virtual host per cloud node: every host it is known by, each allowed port, to its IP. */
export function directVirtualHosts(cloudNodes: readonly TunnelNode[], settings: Settings): DeepPartial<VirtualHost>[] {
  return cloudNodes.flatMap((node) => {
    const ip = node.addresses.find((a) => isIP(a) !== 0);
    if (ip === undefined) return [];
    return allowedPortsOf(node.kubeletPort, settings).map((port) => ({
      name: `direct_${node.name}_${port}`,
      domains: routingHosts(node).map((host) => authority(host, port)),
      routes: [routeSettingHeader({ connectMatcher: {} }, CLOUD.directCluster, ORIGINAL_DST_HEADER, authority(ip, port), true)],
    }));
  });
}
