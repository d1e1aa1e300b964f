// Plain-JSON views of resource sets, in a stable order (type in ADS order, then name): the shape of the
// golden files and of `xds dump`, so the two read alike and diff cleanly.

import { anyToJson, type Json } from '../../envoy/render.js';
import { ADS_ORDER, shortTypeName } from '../../envoy/xds-types.js';
import type { ResourceSet } from './translate.js';

export function resourceSetToJson(set: ResourceSet): { [type: string]: Json[] } {
  const out: { [type: string]: Json[] } = {};
  for (const type of ADS_ORDER) {
    const byName = set.get(type);
    if (!byName || byName.size === 0) continue;
    const names = [...byName.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    out[shortTypeName(type)] = names.map(([, any]) => anyToJson(any));
  }
  return out;
}
