// What `xds dump` prints: the resources the server holds for one proxy key, with versions, and what
// each connected stream of that proxy was sent and acknowledged. Stable order, so two dumps diff cleanly.

import { anyToJson, type Json } from '../../envoy/render.js';
import { ADS_ORDER, shortTypeName } from '../../envoy/xds-types.js';
import type { Ledger } from '../cache/ledger.js';
import type { ProxyKey, ResourceWatcher } from '../cache/snapshot-cache.js';
import { filterResources, type DumpFilter } from './dump-filter.js';

/**
 * `refusedInput`: node input the translation left out that concerns this proxy, with the reasons.
 * `filter` narrows the resources (type, name, one node's cloud routes); secrets are always redacted.
 */
export function dumpProxy(key: ProxyKey, cache: ResourceWatcher, ledger: Ledger, refusedInput: readonly string[] = [], filter: DumpFilter = {}): Json {
  const resources: { [type: string]: Json } = {};
  for (const type of ADS_ORDER) {
    const snapshot = cache.current(key, type);
    if (snapshot.resources.size === 0) continue;
    const items = [...snapshot.resources.values()]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((r): Json => ({ name: r.name, version: r.version, resource: anyToJson(r.any) }));
    resources[shortTypeName(type)] = { version: snapshot.version, items };
  }
  const streams = ledger.forKey(key).map(
    (entry): Json => ({
      proxy: entry.proxyId,
      stream: entry.streamId,
      connectedAt: entry.connectedAt,
      types: Object.fromEntries(
        ADS_ORDER.flatMap((type) => {
          const t = entry.types.get(type);
          if (!t) return [];
          const view: { [key: string]: Json } = { status: t.status, sentVersion: t.sentVersion ?? null, ackedVersion: t.ackedVersion ?? null };
          if (t.subscribed.length > 0) view.subscribed = t.subscribed;
          if (t.nack) view.lastNack = { ...t.nack };
          return [[shortTypeName(type), view]];
        }),
      ),
    }),
  );
  return { key, resources: filterResources(resources, filter), streams, refusedInput: [...refusedInput] };
}

/**
 * Only the resources, as {Type: [resource, …]}: the shape of a proxy's part of the translator's golden
 * files (`cloud:` or `edges.<node>:`), so a dump diffs against a golden file as well as another dump.
 */
export function resourcesOnly(dump: Json): Json {
  const resources = (dump as { resources?: Record<string, { items?: { resource: Json }[] }> }).resources ?? {};
  return Object.fromEntries(Object.entries(resources).map(([type, entry]) => [type, (entry.items ?? []).map((item) => item.resource)]));
}
