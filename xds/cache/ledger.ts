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
  ackedVersion?: string;
  nack?: { version: string; nonce: string; detail: string; at: string };
}

export interface ProxyEntry {
  readonly streamId: number;
  readonly proxyId: string;
  readonly key: ProxyKey;
  readonly connectedAt: string;
  readonly types: Map<XdsTypeUrl, TypeLedger>;
}

export class Ledger {
  private readonly entries = new Map<number, ProxyEntry>();

  open(streamId: number, proxyId: string, key: ProxyKey, now: Date): ProxyEntry {
    const entry: ProxyEntry = { streamId, proxyId, key, connectedAt: now.toISOString(), types: new Map() };
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
