// Who is on the other end of a stream, from the node identity of its first request. Edge Envoys say
// cluster "edge" and their node name as id; cloud Envoys say cluster "cloud" and any id of their own.

import type { Node } from '../../envoy/generated/envoy/config/core/v3/base.js';
import { CLOUD_KEY, edgeKey, type ProxyKey } from '../cache/snapshot-cache.js';

export const ROLES = ['cloud', 'edge'] as const;
export type ProxyRole = (typeof ROLES)[number];

export interface ProxyIdentity {
  readonly role: ProxyRole;
  /** The Envoy node id: the node name for an edge proxy. */
  readonly id: string;
  readonly key: ProxyKey;
  /** Worker threads, when the bootstrap declares them (metadata `concurrency`, set by agent-bootstrap). */
  readonly concurrency?: number;
}

/** The metadata key agent-bootstrap writes a proxy's --concurrency under. */
export const CONCURRENCY_METADATA_KEY = 'concurrency';

function concurrencyOf(node: Node): number | undefined {
  const value: unknown = node.metadata?.[CONCURRENCY_METADATA_KEY];
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
}

export type IdentifyResult = { ok: true; identity: ProxyIdentity } | { ok: false; error: string };

export function identify(node: Node | undefined): IdentifyResult {
  if (!node || node.id === '') return { ok: false, error: 'the first discovery request must carry node.id' };
  const role = node.cluster;
  const concurrency = concurrencyOf(node);
  if (role === 'cloud') return { ok: true, identity: { role, id: node.id, key: CLOUD_KEY, concurrency } };
  if (role === 'edge') return { ok: true, identity: { role, id: node.id, key: edgeKey(node.id), concurrency } };
  return { ok: false, error: `node.cluster must be "cloud" or "edge", not "${role}" (node.id "${node.id}")` };
}
