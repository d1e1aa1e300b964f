// Who is on the other end of a stream, from the node identity of its first request. Edge Envoys say
// cluster "edge" and their node name as id; cloud Envoys and sidecars (the Envoy beside a cloud client
// that cannot use a CONNECT proxy itself, such as metrics-server) say cluster "cloud" or "sidecar" and
// any id of their own.

import type { Node } from '../../envoy/generated/envoy/config/core/v3/base.js';
import { CLOUD_KEY, SIDECAR_KEY, edgeKey, type ProxyKey } from '../cache/snapshot-cache.js';

export const ROLES = ['cloud', 'edge', 'sidecar'] as const;
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

export type IdentifyResult = { ok: true; identity: ProxyIdentity } | { ok: false; error: string; reason: 'invalid' | 'denied' };

/** What the proxy's client certificate proves, from its URI SANs (spiffe://edge-tunnel/<role>/<name>). */
export interface PeerIdentity {
  readonly role: ProxyRole;
  readonly name: string;
}

const IDENTITY_URI = /^spiffe:\/\/edge-tunnel\/(edge|cloud|sidecar)\/([a-z0-9.-]+)$/;

/**
 * Reads the identity from a certificate's subjectaltname string ("DNS:a, URI:spiffe://…"). Returns
 * undefined unless exactly one edge-tunnel identity is named: a certificate naming two is ambiguous.
 */
export function peerIdentityFromSans(subjectAltName: string | undefined): PeerIdentity | undefined {
  const found = sanEntries(subjectAltName ?? '')
    .filter(([kind]) => kind === 'URI')
    .flatMap(([, value]) => {
      const match = IDENTITY_URI.exec(value);
      return match ? [{ role: match[1] as ProxyRole, name: match[2] }] : [];
    });
  return found.length === 1 ? found[0] : undefined;
}

/**
 * Splits Node's subjectaltname string ("DNS:a, URI:b") into (kind, value) pairs. Node quotes a value
 * holding a comma or a quote as a JSON string, so a crafted DNS name cannot pass for a URI entry.
 */
export function sanEntries(subjectAltName: string): [string, string][] {
  const entries: [string, string][] = [];
  const pattern = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/gy;
  let match: RegExpExecArray | null;
  while ((match = pattern.exec(subjectAltName)) !== null && match[0] !== '') {
    const raw = match[2];
    entries.push([match[1], raw.startsWith('"') ? (JSON.parse(raw) as string) : raw]);
  }
  return entries;
}

/**
 * Checks a stream's first request. With mutual TLS (`peer` given) the claimed node must be the one the
 * certificate names: an edge proxy can only ever receive its own node's configuration.
 */
export function identify(node: Node | undefined, peer?: PeerIdentity | 'none'): IdentifyResult {
  if (!node || node.id === '') return { ok: false, reason: 'invalid', error: 'the first discovery request must carry node.id' };
  if (peer === 'none') {
    return { ok: false, reason: 'denied', error: `the client certificate names no edge-tunnel identity (a spiffe://edge-tunnel/edge/<node>, …/cloud/<id> or …/sidecar/<id> URI SAN); node.id "${node.id}" refused` };
  }
  if (peer && (peer.role !== node.cluster || (peer.role === 'edge' && peer.name !== node.id))) {
    return {
      ok: false,
      reason: 'denied',
      error: `the client certificate names ${peer.role} "${peer.name}" but the request claims ${node.cluster || '(no cluster)'} "${node.id}"`,
    };
  }
  const role = node.cluster;
  const concurrency = concurrencyOf(node);
  if (role === 'cloud') return { ok: true, identity: { role, id: node.id, key: CLOUD_KEY, concurrency } };
  if (role === 'edge') return { ok: true, identity: { role, id: node.id, key: edgeKey(node.id), concurrency } };
  if (role === 'sidecar') return { ok: true, identity: { role, id: node.id, key: SIDECAR_KEY, concurrency } };
  return { ok: false, reason: 'invalid', error: `node.cluster must be "cloud", "edge" or "sidecar", not "${role}" (node.id "${node.id}")` };
}
