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

/** Everything dynamic comes over the one ADS stream, in xDS v3. */
export function adsConfigSource(): DeepPartial<ConfigSource> {
  return { ads: {}, resourceApiVersion: ApiVersion.V3 };
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
