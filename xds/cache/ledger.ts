// What each connected proxy was sent and what it acknowledged, per type, in grpc-js-xds's status words.
// It holds names, versions and nonces only, never resources, and forgets a stream when it closes.

import type { XdsTypeUrl } from '../../envoy/xds-types.js';
import type { ProxyKey } from './snapshot-cache.js';

export type ResourceStatus = 'REQUESTED' | 'ACKED' | 'NACKED';

export interface TypeLedger {
  status: ResourceStatus;
  /** Resource names the proxy asked for; empty for a wildcard subscription. */
  subscribed: string[];
  sentVersion?: string;
  sentNonce?: string;
  /** When the last response went out (ISO time): a send not ACKed for long is a stale proxy. */
  sentAt?: string;
  ackedVersion?: string;
  nack?: { version: string; nonce: string; detail: string; at: string };
}

export interface ProxyEntry {
  readonly streamId: number;
  readonly proxyId: string;
  readonly key: ProxyKey;
  /** cloud, edge or sidecar. */
  readonly role: string;
  /** The Envoy release the proxy reported (node.user_agent_build_version), if it did. */
  readonly envoyVersion?: string;
  /** The ADS flavour of the stream: incremental (delta) or State of the World (sotw). */
  readonly api: 'delta' | 'sotw';
  readonly connectedAt: string;
  readonly types: Map<XdsTypeUrl, TypeLedger>;
}

export class Ledger {
  private readonly entries = new Map<number, ProxyEntry>();

  open(streamId: number, proxy: { id: string; key: ProxyKey; role: string; envoyVersion?: string; api: 'delta' | 'sotw' }, now: Date): ProxyEntry {
    const entry: ProxyEntry = { streamId, proxyId: proxy.id, key: proxy.key, role: proxy.role, envoyVersion: proxy.envoyVersion, api: proxy.api, connectedAt: now.toISOString(), types: new Map() };
    this.entries.set(streamId, entry);
    return entry;
  }

  close(streamId: number): void {
    this.entries.delete(streamId);
  }

  /** Streams for one key, oldest first (a proxy may briefly hold two while it reconnects). */
  forKey(key: ProxyKey): ProxyEntry[] {
    return [...this.entries.values()].filter((e) => e.key === key).sort((a, b) => a.streamId - b.streamId);
  }

  all(): ProxyEntry[] {
    return [...this.entries.values()].sort((a, b) => a.streamId - b.streamId);
  }
}
