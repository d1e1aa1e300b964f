// Small builders shared by the cloud and edge translators.

import { isIP } from 'node:net';
import type { Duration } from '../../envoy/generated/google/protobuf/duration.js';
import type { ConfigSource } from '../../envoy/generated/envoy/config/core/v3/config_source.js';
import { ApiVersion } from '../../envoy/generated/envoy/config/core/v3/config_source.js';
import type { Address } from '../../envoy/generated/envoy/config/core/v3/address.js';
import type { Cluster } from '../../envoy/generated/envoy/config/cluster/v3/cluster.js';
import { Cluster_DiscoveryType } from '../../envoy/generated/envoy/config/cluster/v3/cluster.js';
import type { HttpFilter } from '../../envoy/generated/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import type { DeepPartial } from '../../envoy/generated/envoy/config/core/v3/base.js';
import { pack } from '../../envoy/registry.js';
import type { SocketAddress } from '../model/settings.js';

export function seconds(value: number): Duration {
  const whole = Math.floor(value);
  return { seconds: whole, nanos: Math.round((value - whole) * 1e9) };
}

export function socketAddress({ address, port }: SocketAddress): DeepPartial<Address> {
  return { socketAddress: { address, portValue: port } };
}

/**
 * Everything dynamic comes over the one ADS stream, in xDS v3. Envoy waits for the first answer as long
 * as it takes (initial fetch timeout 0): with its 15 s default, an Envoy that cannot reach the xDS server
 * reports itself ready (/ready 200) with no listeners, and a listener goes live without its routes or
 * certificates. So /ready, and the readiness probes that read it, mean "configuration accepted".
 */
export function adsConfigSource(): DeepPartial<ConfigSource> {
  return { ads: {}, resourceApiVersion: ApiVersion.V3, initialFetchTimeout: seconds(0) };
}

export function routerFilter(): DeepPartial<HttpFilter> {
  return { name: 'envoy.filters.http.router', typedConfig: pack('envoy.extensions.filters.http.router.v3.Router', {}) };
}

/** A cluster of fixed addresses: STATIC when all are IPs, STRICT_DNS when any is a host name. */
export function fixedEndpointsCluster(name: string, targets: readonly SocketAddress[], connectTimeoutSeconds: number): DeepPartial<Cluster> {
  return {
    name,
    type: targets.every((t) => isIP(t.address)) ? Cluster_DiscoveryType.STATIC : Cluster_DiscoveryType.STRICT_DNS,
    connectTimeout: seconds(connectTimeoutSeconds),
    loadAssignment: {
      clusterName: name,
      endpoints: [{ lbEndpoints: targets.map((target) => ({ endpoint: { address: socketAddress(target) } })) }],
    },
  };
}

/**
 * A tunnelled stream may sit idle as long as the kubelet lets a streaming session idle (its default
 * streamingConnectionIdleTimeout is 4 h): Envoy's 5-minute default would cut an idle `kubectl exec`.
 */
export const STREAM_IDLE_TIMEOUT_S = 4 * 3600;

/**
 * HTTP/2 flow-control windows on both ends of a tunnel and on the hop to the connect-terminator. They
 * bound what one stream can make a proxy buffer for a slow reader (the stream window, 4 MiB) and for
 * all streams of one tunnel (the connection window), while leaving a 100 ms weak link room for about
 * 40 MiB/s per stream. Envoy's own defaults are 16 and 24 MiB.
 */
export const TUNNEL_WINDOWS = { initialStreamWindowSize: 4 * 1024 * 1024, initialConnectionWindowSize: 16 * 1024 * 1024 } as const;
