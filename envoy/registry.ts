// The one table of Envoy message types edge-tunnel packs into `Any`: type URLs are derived from it, so
// a wrong pairing of URL and message fails to compile instead of being NACKed by Envoy.

import { Any } from './generated/google/protobuf/any.js';
import { Bootstrap } from './generated/envoy/config/bootstrap/v3/bootstrap.js';
import { Cluster } from './generated/envoy/config/cluster/v3/cluster.js';
import { ClusterLoadAssignment } from './generated/envoy/config/endpoint/v3/endpoint.js';
import { Listener } from './generated/envoy/config/listener/v3/listener.js';
import { RouteConfiguration } from './generated/envoy/config/route/v3/route.js';
import { VirtualHost } from './generated/envoy/config/route/v3/route_components.js';
import { Secret } from './generated/envoy/extensions/transport_sockets/tls/v3/secret.js';
import { HttpConnectionManager } from './generated/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import { Router } from './generated/envoy/extensions/filters/http/router/v3/router.js';
import { ReverseTunnel } from './generated/envoy/extensions/filters/network/reverse_tunnel/v3/reverse_tunnel.js';
import { ReverseConnectionClusterConfig } from './generated/envoy/extensions/clusters/reverse_connection/v3/reverse_connection.js';
import { HttpProtocolOptions } from './generated/envoy/extensions/upstreams/http/v3/http_protocol_options.js';
import { DownstreamReverseConnectionSocketInterface } from './generated/envoy/extensions/bootstrap/reverse_tunnel/downstream_socket_interface/v3/downstream_reverse_connection_socket_interface.js';
import { UpstreamReverseConnectionSocketInterface } from './generated/envoy/extensions/bootstrap/reverse_tunnel/upstream_socket_interface/v3/upstream_reverse_connection_socket_interface.js';
import {
  DownstreamTlsContext,
  UpstreamTlsContext,
} from './generated/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { StdoutAccessLog } from './generated/envoy/extensions/access_loggers/stream/v3/stream.js';
import { TcpProxy } from './generated/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.js';
import { OriginalDst } from './generated/envoy/extensions/filters/listener/original_dst/v3/original_dst.js';

/** What ts-proto generates for every message; the subset edge-tunnel relies on. */
export interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
  toJSON(message: T): unknown;
  fromPartial(partial: never): T;
}

const codecs = {
  'envoy.config.bootstrap.v3.Bootstrap': Bootstrap,
  'envoy.config.cluster.v3.Cluster': Cluster,
  'envoy.config.endpoint.v3.ClusterLoadAssignment': ClusterLoadAssignment,
  'envoy.config.listener.v3.Listener': Listener,
  'envoy.config.route.v3.RouteConfiguration': RouteConfiguration,
  'envoy.config.route.v3.VirtualHost': VirtualHost,
  'envoy.extensions.transport_sockets.tls.v3.Secret': Secret,
  'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager': HttpConnectionManager,
  'envoy.extensions.filters.http.router.v3.Router': Router,
  'envoy.extensions.filters.network.reverse_tunnel.v3.ReverseTunnel': ReverseTunnel,
  'envoy.extensions.clusters.reverse_connection.v3.ReverseConnectionClusterConfig': ReverseConnectionClusterConfig,
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': HttpProtocolOptions,
  'envoy.extensions.bootstrap.reverse_tunnel.downstream_socket_interface.v3.DownstreamReverseConnectionSocketInterface':
    DownstreamReverseConnectionSocketInterface,
  'envoy.extensions.bootstrap.reverse_tunnel.upstream_socket_interface.v3.UpstreamReverseConnectionSocketInterface':
    UpstreamReverseConnectionSocketInterface,
  'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext': DownstreamTlsContext,
  'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext': UpstreamTlsContext,
  'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog': StdoutAccessLog,
  'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy': TcpProxy,
  'envoy.extensions.filters.listener.original_dst.v3.OriginalDst': OriginalDst,
} as const;

export type MessageName = keyof typeof codecs;
type CodecOf<N extends MessageName> = (typeof codecs)[N];
export type MessageOf<N extends MessageName> = ReturnType<CodecOf<N>['decode']>;
export type PartialOf<N extends MessageName> = Parameters<CodecOf<N>['fromPartial']>[0];

const TYPE_URL_PREFIX = 'type.googleapis.com/';

export function typeUrlOf<N extends MessageName>(name: N): `type.googleapis.com/${N}` {
  return `${TYPE_URL_PREFIX}${name}`;
}

function codecOf<N extends MessageName>(name: N): Codec<MessageOf<N>> {
  // The table pairs each name with its own codec; TypeScript cannot follow that through the index.
  return codecs[name] as unknown as Codec<MessageOf<N>>;
}

/** Builds a message from a partial (defaults filled in) and packs it into an `Any`. */
export function pack<N extends MessageName>(name: N, partial: PartialOf<N>): Any {
  const codec = codecOf(name);
  const message = codec.fromPartial(partial as never);
  return { typeUrl: typeUrlOf(name), value: Buffer.from(codec.encode(message).finish()) };
}

/** The codec registered for a type URL, or undefined for a type edge-tunnel does not know. */
export function codecForTypeUrl(typeUrl: string): Codec<unknown> | undefined {
  if (!typeUrl.startsWith(TYPE_URL_PREFIX)) return undefined;
  const name = typeUrl.slice(TYPE_URL_PREFIX.length);
  return Object.hasOwn(codecs, name) ? (codecs[name as MessageName] as unknown as Codec<unknown>) : undefined;
}
