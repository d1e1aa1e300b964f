// `xds status`: every proxy connected to every replica, and what is wrong. A replica reports its own
// streams (replicaStatus, served at /status); the command merges the replicas' reports and flags
// proxies that NACKed, proxies that have not ACKed what they were sent for a while (stale), and edge
// nodes that are served but have no edge proxy connected anywhere (missing). Pure, apart from the
// ledger and the cache it reads.

import type { Ledger, TypeLedger } from '../cache/ledger.js';
import { EDGE_KEY_PREFIX } from '../cache/snapshot-cache.js';
import { shortTypeName } from '../../envoy/xds-types.js';
import type { SignerStatus } from '../certificates/signer.js';
import { EDGE_SIGNER as EDGE_SIGNER_NAME } from '../certificates/approval.js';

export interface ProxyStatus {
  readonly replica: string;
  readonly stream: number;
  readonly role: string;
  readonly proxy: string;
  readonly envoyVersion?: string;
  /** delta or sotw. */
  readonly api?: string;
  readonly connectedAt: string;
  readonly types: Readonly<Record<string, TypeLedger>>;
}

export interface ReplicaStatus {
  readonly replica: string;
  /** Where the command reached it (added by the command, not the replica). */
  readonly url?: string;
  /** Edge nodes this replica serves a configuration for. */
  readonly servedEdges: readonly string[];
  readonly proxies: readonly ProxyStatus[];
  /** The edge certificate signer as this replica sees it (every replica watches the requests). */
  readonly signer?: SignerStatus;
}

export function replicaStatus(replica: string, ledger: Ledger, keys: readonly string[], signer?: SignerStatus): ReplicaStatus {
  return {
    replica,
    ...(signer !== undefined && { signer }),
    servedEdges: keys.filter((k) => k.startsWith(EDGE_KEY_PREFIX)).map((k) => k.slice(EDGE_KEY_PREFIX.length)).sort(),
    proxies: ledger.all().map((entry) => ({
      replica,
      stream: entry.streamId,
      role: entry.role,
      proxy: entry.proxyId,
      ...(entry.envoyVersion !== undefined && { envoyVersion: entry.envoyVersion }),
      api: entry.api,
      connectedAt: entry.connectedAt,
      types: Object.fromEntries([...entry.types].map(([type, ledgerEntry]) => [shortTypeName(type), { ...ledgerEntry }])),
    })),
  };
}

export type Health = 'ok' | 'stale' | 'nacked';

export interface Problem {
  readonly kind: 'stale' | 'nacked' | 'missing' | 'signer' | 'certificate';
  /** "edge/node-a via xds-0", or the node that has no proxy. */
  readonly where: string;
  readonly detail: string;
}

export interface FleetStatus {
  /** Every replica asked, with how many proxies it serves. */
  readonly replicas: readonly { readonly replica: string; readonly url?: string; readonly proxies: number }[];
  readonly proxies: readonly (ProxyStatus & { readonly health: Health })[];
  readonly problems: readonly Problem[];
}

/** A type is stale when what it was sent has gone unanswered for longer than `staleAfterMs`. */
function typeHealth(ledger: TypeLedger, connectedAt: string, now: number, staleAfterMs: number): Health {
  if (ledger.status === 'NACKED') return 'nacked';
  if (ledger.status === 'ACKED') return 'ok';
  const since = Date.parse(ledger.sentAt ?? connectedAt);
  return now - since > staleAfterMs ? 'stale' : 'ok';
}

export function fleetStatus(replicas: readonly ReplicaStatus[], now: Date, staleAfterMs = 15_000): FleetStatus {
  const problems: Problem[] = [];
  const proxies = replicas.flatMap((r) => r.proxies).map((proxy) => {
    const where = `${proxy.role} ${proxy.proxy} via ${proxy.replica}`;
    let health: Health = 'ok';
    for (const [type, ledger] of Object.entries(proxy.types)) {
      const h = typeHealth(ledger, proxy.connectedAt, now.getTime(), staleAfterMs);
      if (h === 'nacked') {
        problems.push({ kind: 'nacked', where, detail: `${type} version ${ledger.nack?.version ?? '?'} NACKed at ${ledger.nack?.at ?? '?'}: ${ledger.nack?.detail ?? ''}` });
        health = 'nacked';
      } else if (h === 'stale') {
        problems.push({ kind: 'stale', where, detail: `${type} version ${ledger.sentVersion ?? '(none yet)'} sent at ${ledger.sentAt ?? '(never)'} and not ACKed` });
        if (health === 'ok') health = 'stale';
      }
    }
    return { ...proxy, health };
  });
  const connectedEdges = new Set(proxies.filter((p) => p.role === 'edge').map((p) => p.proxy));
  const served = [...new Set(replicas.flatMap((r) => r.servedEdges))].sort();
  for (const node of served) {
    if (!connectedEdges.has(node)) problems.push({ kind: 'missing', where: node, detail: `edge node ${node} is served but no edge proxy of it is connected to any replica` });
  }
  problems.push(...signerProblems(replicas, staleAfterMs));
  const order = (p: ProxyStatus): string => `${p.role}\u0000${p.proxy}\u0000${p.replica}`;
  const asked = replicas.map((r) => ({ replica: r.replica, ...(r.url !== undefined && { url: r.url }), proxies: r.proxies.length }));
  return { replicas: asked, proxies: proxies.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0)), problems };
}

/** Certificate requests nobody signs (every replica sees them: reported once), and renewals overdue. */
function signerProblems(replicas: readonly ReplicaStatus[], staleAfterMs: number): Problem[] {
  const views = replicas.flatMap((r) => (r.signer ? [{ replica: r.replica, ...r.signer }] : []));
  if (views.length === 0) return [];
  const problems: Problem[] = [];
  const worst = views.reduce((a, b) => (b.oldestWaitSeconds > a.oldestWaitSeconds ? b : a));
  // Signing takes well under a second; a request waiting longer than the stale limit is not being signed.
  if (worst.waiting > 0 && worst.oldestWaitSeconds * 1000 > staleAfterMs) {
    problems.push({
      kind: 'signer',
      where: `signer ${EDGE_SIGNER_NAME}`,
      detail: `${worst.waiting} edge certificate request(s) waiting, the oldest for ${worst.oldestWaitSeconds} s${worst.lastError ? `: ${worst.lastError}` : ': is a replica leading (xds_leader) and its CA readable?'}`,
    });
  }
  const overdue = new Map<string, string>();
  for (const view of views) for (const { node, notAfter } of view.renewalOverdue) overdue.set(node, notAfter);
  for (const [node, notAfter] of [...overdue].sort()) {
    problems.push({ kind: 'certificate', where: node, detail: `edge node ${node}'s certificate expires at ${notAfter} and has not been renewed (its certificate agent should have at two thirds of its lifetime)` });
  }
  return problems;
}
