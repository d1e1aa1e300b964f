// The xDS resource types edge-tunnel serves, in the order ADS pushes them: secrets and clusters before
// the listeners that use them, listeners before the routes they name (Envoy's xDS protocol guidance).

import { typeUrlOf } from './registry.js';

export const XdsType = {
  secret: typeUrlOf('envoy.extensions.transport_sockets.tls.v3.Secret'),
  cluster: typeUrlOf('envoy.config.cluster.v3.Cluster'),
  endpoint: typeUrlOf('envoy.config.endpoint.v3.ClusterLoadAssignment'),
  listener: typeUrlOf('envoy.config.listener.v3.Listener'),
  route: typeUrlOf('envoy.config.route.v3.RouteConfiguration'),
  /** VHDS: a route configuration's virtual hosts one by one (incremental ADS only). */
  virtualHost: typeUrlOf('envoy.config.route.v3.VirtualHost'),
} as const;

export type XdsTypeUrl = (typeof XdsType)[keyof typeof XdsType];

export const ADS_ORDER: readonly XdsTypeUrl[] = [
  XdsType.secret,
  XdsType.cluster,
  XdsType.endpoint,
  XdsType.listener,
  XdsType.route,
  XdsType.virtualHost,
];

/** Types whose SotW requests name no resources and get all of them (LDS, CDS). */
export const WILDCARD_TYPES: ReadonlySet<XdsTypeUrl> = new Set([XdsType.listener, XdsType.cluster]);

export function isXdsTypeUrl(typeUrl: string): typeUrl is XdsTypeUrl {
  return (ADS_ORDER as readonly string[]).includes(typeUrl);
}

/** A short name for logs and dumps: "Listener", "Cluster", … */
export function shortTypeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}
