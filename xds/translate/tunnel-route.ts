// The one route shape that sends a CONNECT down a node's tunnels: the reverse-connection cluster, with
// the node id set by a per-route header mutation (it must be set before the router runs).

import type { DeepPartial } from '../../envoy/generated/envoy/config/core/v3/base.js';
import { HeaderValueOption_HeaderAppendAction } from '../../envoy/generated/envoy/config/core/v3/base.js';
import type { Route, RouteMatch } from '../../envoy/generated/envoy/config/route/v3/route_components.js';
import { pack } from '../../envoy/registry.js';
import { seconds } from './common.js';
import { CLOUD, TUNNEL_NODE_HEADER } from './names.js';

/** A route whose `header` is overwritten with `value` before the router sees the request. */
export function routeSettingHeader(match: DeepPartial<RouteMatch>, cluster: string, header: string, value: string, terminateConnect = false): DeepPartial<Route> {
  return {
    match,
    route: {
      cluster,
      timeout: seconds(0),
      ...(terminateConnect && { upgradeConfigs: [{ upgradeType: 'CONNECT', connectConfig: {} }] }),
    },
    typedPerFilterConfig: {
      'envoy.filters.http.header_mutation': pack('envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute', {
        mutations: {
          requestMutations: [
            { append: { header: { key: header, value }, appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD } },
          ],
        },
      }),
    },
  };
}

export function tunnelRoute(node: string, match: DeepPartial<RouteMatch> = { connectMatcher: {} }): DeepPartial<Route> {
  return routeSettingHeader(match, CLOUD.tunnelCluster, TUNNEL_NODE_HEADER, node);
}
