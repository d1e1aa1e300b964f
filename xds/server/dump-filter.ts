// Narrowing a dump for an audit: one type, one resource name, or the cloud-side routes of one node
// alone; and redaction, so a dump can be pasted into a ticket. Works on the dump's plain JSON, whose
// resources have the translator's golden-file shape.

import type { Json } from '../../envoy/render.js';
import { CLOUD } from '../translate/names.js';

export interface DumpFilter {
  /** Short type name: Cluster, Listener, RouteConfiguration, VirtualHost, Secret. */
  readonly type?: string;
  /** Keep only the resource of this name. */
  readonly name?: string;
  /** Cloud dumps: keep only the virtual hosts and routes that send CONNECTs down this node's tunnels. */
  readonly node?: string;
}

type JsonObject = { [key: string]: Json };

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether a route sends CONNECTs down `node`'s tunnels: the tunnel cluster, the node as the route's name. */
function routesTo(route: Json, node: string): boolean {
  return isObject(route) && route.name === node && isObject(route.route) && route.route.cluster === CLOUD.tunnelCluster;
}

/** A virtual host reduced to its routes that reach `node`; undefined when none does. */
function hostReaching(host: Json, node: string): JsonObject | undefined {
  if (!isObject(host) || !Array.isArray(host.routes)) return undefined;
  const routes = host.routes.filter((route) => routesTo(route, node));
  return routes.length > 0 ? { ...host, routes } : undefined;
}

/** A RouteConfiguration reduced to the routes that reach `node`, and the virtual hosts holding them. */
function nodeRoutes(resource: JsonObject, node: string): JsonObject {
  const hosts = Array.isArray(resource.virtualHosts) ? resource.virtualHosts : [];
  return { ...resource, virtualHosts: hosts.flatMap((host) => hostReaching(host, node) ?? []) };
}

/** Inline key or certificate material (Envoy accepts it; edge-tunnel sends file paths) becomes "<redacted>". */
function redactInline(value: Json): Json {
  if (Array.isArray(value)) return value.map(redactInline);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, key === 'inlineBytes' || key === 'inlineString' ? '<redacted>' : redactInline(v)]));
}

/** The dump's `resources` ({Type: {version, items: [{name, version, resource}]}}) narrowed by `filter`, secrets redacted. */
export function filterResources(resources: JsonObject, filter: DumpFilter): JsonObject {
  const out: JsonObject = {};
  for (const [type, entry] of Object.entries(resources)) {
    if (filter.type !== undefined && type !== filter.type) continue;
    if (!isObject(entry) || !Array.isArray(entry.items)) continue;
    const items = entry.items.flatMap((item): Json[] => {
      if (!isObject(item) || !isObject(item.resource)) return [];
      if (filter.name !== undefined && item.name !== filter.name) return [];
      // Secrets may only ever show where their files are.
      if (type === 'Secret') return filter.node === undefined ? [{ ...item, resource: redactInline(item.resource) }] : [];
      if (filter.node === undefined) return [item];
      if (type === 'RouteConfiguration') return [{ ...item, resource: nodeRoutes(item.resource, filter.node) }];
      // VHDS: a node's virtual host is a resource of its own.
      const host = type === 'VirtualHost' ? hostReaching(item.resource, filter.node) : undefined;
      return host ? [{ ...item, resource: host }] : [];
    });
    if (items.length > 0) out[type] = { ...entry, items };
  }
  return out;
}
