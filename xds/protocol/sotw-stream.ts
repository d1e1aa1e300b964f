// One State-of-the-World ADS stream: identity from the first request, a nonce and version per type,
// ACK and NACK told apart by error_detail, stale nonces ignored, and a NACKed version parked until the
// content changes, so a rejected config is never resent in a loop.
//
// Flow control, so that a slow proxy gets the latest state when it catches up, never a queue of stale
// ones: at most one response per type is in flight (the next waits for the proxy's ACK or NACK, as
// the xDS protocol pairs responses with requests), and while the transport reports its buffer full
// nothing is written at all. Changes meanwhile only mark the type; what is sent then is the newest.

import type { Logger } from 'pino';
import type { DiscoveryRequest, DiscoveryResponse } from '../../envoy/generated/envoy/service/discovery/v3/discovery.js';
import { ADS_ORDER, WILDCARD_TYPES, isXdsTypeUrl, shortTypeName, type XdsTypeUrl } from '../../envoy/xds-types.js';
import type { Ledger, ProxyEntry, TypeLedger } from '../cache/ledger.js';
import type { ResourceWatcher } from '../cache/snapshot-cache.js';
import { typeVersion, type VersionedResource } from '../cache/snapshot.js';
import { identify, type PeerIdentity, type ProxyIdentity } from './identity.js';
import type { ProtocolMetrics } from './metrics.js';

/** More names than any proxy of ours subscribes to: a larger list is garbage, not a subscription. */
export const MAX_RESOURCE_NAMES = 10_000;

export interface StreamDeps {
  readonly watcher: ResourceWatcher;
  readonly ledger: Ledger;
  readonly logger: Logger;
  readonly metrics: ProtocolMetrics;
  readonly now?: () => Date;
  /** Told of every proxy that identified itself, e.g. to check it against the settings. */
  readonly onConnect?: (identity: ProxyIdentity) => void;
}

export interface StreamIo {
  /** Writes a response; false when the transport's buffer is full (wait for SotwStream.drained()). */
  send(response: DiscoveryResponse): boolean;
  /**
   * Ends the stream with an error status: 'invalid' for a malformed identity (gRPC INVALID_ARGUMENT),
   * 'denied' for a proxy that may not be served as what it claims (PERMISSION_DENIED).
   */
  fail(message: string, reason: 'invalid' | 'denied'): void;
}

interface TypeState {
  readonly type: XdsTypeUrl;
  readonly ledger: TypeLedger;
  wildcard: boolean;
  names: ReadonlySet<string>;
  /** The version last NACKed: not sent again until the content changes. */
  parkedVersion?: string;
  /** A response of this type awaits the proxy's ACK or NACK. */
  inFlight: boolean;
  /** Something is owed once the type may be sent: a change (false) or an answer to a request (true). */
  owed?: 'change' | 'request';
}

export class SotwStream {
  private identity?: ProxyIdentity;
  private entry?: ProxyEntry;
  private unwatch?: () => void;
  private readonly types = new Map<XdsTypeUrl, TypeState>();
  private nonce = 0;
  private closed = false;
  /** The transport's buffer is full: nothing is written until it drains. */
  private blocked = false;

  /**
   * @param peer what the client certificate proves: an identity, 'none' when it proves none, or
   *   undefined on a plaintext (insecure mode) connection.
   */
  constructor(
    private readonly id: number,
    private readonly deps: StreamDeps,
    private readonly io: StreamIo,
    private readonly peer?: PeerIdentity | 'none',
  ) {}

  handle(request: DiscoveryRequest): void {
    if (this.closed) return;
    if (!this.identity && !this.start(request)) return;
    const type = request.typeUrl;
    if (!isXdsTypeUrl(type)) {
      this.reject('unknown_type', `type_url "${type}" is not served here`);
      return;
    }
    if (request.resourceNames.length > MAX_RESOURCE_NAMES) {
      this.reject('too_many_names', `${request.resourceNames.length} resource names for ${shortTypeName(type)}, more than ${MAX_RESOURCE_NAMES}`);
      return;
    }
    const state = this.types.get(type);
    if (request.responseNonce === '' || !state) {
      this.subscribe(type, request.resourceNames);
      this.respond(type, 'request');
      return;
    }
    if (request.responseNonce !== state.ledger.sentNonce) {
      // A reply to an older response: a newer one is on its way to the proxy (envoy#10363).
      this.deps.logger.debug({ stream: this.id, type: shortTypeName(type), nonce: request.responseNonce }, 'stale nonce ignored');
      return;
    }
    if (request.errorDetail) this.recordNack(type, state, request);
    else this.recordAck(type, state, request);
    state.inFlight = false;
    if (this.resubscribe(state, request.resourceNames)) this.respond(type, 'request');
    else if (state.owed) this.respond(type, state.owed);
  }

  /** The transport can take more: what was held back goes out, newest state only, in ADS order. */
  drained(): void {
    if (this.closed || !this.blocked) return;
    this.blocked = false;
    for (const type of ADS_ORDER) {
      const state = this.types.get(type);
      if (state?.owed && !state.inFlight && !this.blocked) this.respond(type, state.owed);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unwatch?.();
    this.deps.ledger.close(this.id);
    if (this.identity) this.deps.metrics.streams.dec({ role: this.identity.role });
  }

  private start(request: DiscoveryRequest): boolean {
    const result = identify(request.node, this.peer);
    if (!result.ok) {
      this.deps.metrics.rejectedRequests.inc({ reason: 'identity' });
      this.deps.logger.warn({ stream: this.id, error: result.error }, 'stream refused');
      this.io.fail(result.error, result.reason);
      this.close();
      return false;
    }
    this.identity = result.identity;
    this.entry = this.deps.ledger.open(this.id, { ...this.identity, envoyVersion: envoyVersionOf(request) }, this.now());
    this.unwatch = this.deps.watcher.watch(this.identity.key, (types) => this.onChange(types));
    this.deps.metrics.streams.inc({ role: this.identity.role });
    this.deps.logger.info({ stream: this.id, role: this.identity.role, proxy: this.identity.id }, 'proxy connected');
    this.deps.onConnect?.(this.identity);
    return true;
  }

  /** Garbage in one request must not cost the proxy its other subscriptions: log, count, ignore. */
  private reject(reason: string, message: string): void {
    this.deps.metrics.rejectedRequests.inc({ reason });
    this.deps.logger.warn({ stream: this.id, proxy: this.identity?.id, reason }, `discovery request ignored: ${message}`);
  }

  private subscribe(type: XdsTypeUrl, names: readonly string[]): void {
    const ledger: TypeLedger = { status: 'REQUESTED', subscribed: [] };
    const state: TypeState = { type, ledger, wildcard: false, names: new Set(), inFlight: false };
    this.resubscribe(state, names);
    this.types.set(type, state);
    this.entry?.types.set(type, ledger);
  }

  /**
   * Applies a request's names; true when the subscription changed. No names means "all" for LDS and
   * CDS (legacy wildcard) and "none" for RDS and EDS; "*" means all for any type.
   */
  private resubscribe(state: TypeState, names: readonly string[]): boolean {
    const wildcard = names.includes('*') || (names.length === 0 && WILDCARD_TYPES.has(state.type));
    const next = new Set(wildcard ? [] : names);
    const same = wildcard === state.wildcard && next.size === state.names.size && [...next].every((n) => state.names.has(n));
    state.wildcard = wildcard;
    state.names = next;
    state.ledger.subscribed = [...next].sort();
    return !same;
  }

  private observeAnswer(type: XdsTypeUrl, state: TypeState, answer: 'ACK' | 'NACK'): void {
    if (!state.ledger.sentAt || !this.identity) return;
    const seconds = (this.now().getTime() - Date.parse(state.ledger.sentAt)) / 1000;
    this.deps.metrics.answerSeconds.observe({ type: shortTypeName(type), role: this.identity.role, answer }, Math.max(0, seconds));
  }

  private recordAck(type: XdsTypeUrl, state: TypeState, request: DiscoveryRequest): void {
    this.observeAnswer(type, state, 'ACK');
    state.ledger.status = 'ACKED';
    state.ledger.ackedVersion = request.versionInfo;
    this.deps.metrics.acks.inc({ type: shortTypeName(type) });
  }

  private recordNack(type: XdsTypeUrl, state: TypeState, request: DiscoveryRequest): void {
    const version = state.ledger.sentVersion ?? '';
    const detail = request.errorDetail?.message ?? '';
    this.observeAnswer(type, state, 'NACK');
    state.ledger.status = 'NACKED';
    state.ledger.nack = { version, nonce: request.responseNonce, detail, at: this.now().toISOString() };
    state.parkedVersion = version;
    this.deps.metrics.nacks.inc({ type: shortTypeName(type) });
    this.deps.logger.warn(
      { stream: this.id, proxy: this.identity?.id, type: shortTypeName(type), version, error_detail: detail },
      'proxy rejected configuration (NACK); keeping it parked until the content changes',
    );
  }

  private onChange(types: readonly XdsTypeUrl[]): void {
    for (const type of ADS_ORDER) {
      const state = this.types.get(type);
      if (state && types.includes(type)) this.respond(type, state.owed === 'request' ? 'request' : 'change');
    }
  }

  /**
   * Sends the type's current resources now if it may (nothing in flight, the transport not full),
   * else remembers that it owes them. A change is sent only when it is news (neither what was last
   * sent nor a NACKed version); a request is always answered.
   */
  private respond(type: XdsTypeUrl, why: 'change' | 'request'): void {
    const state = this.types.get(type);
    if (!state) return;
    if (state.inFlight || this.blocked) {
      if (state.owed === undefined) this.deps.metrics.deferred.inc({ type: shortTypeName(type) });
      state.owed = why === 'request' || state.owed === 'request' ? 'request' : 'change';
      return;
    }
    state.owed = undefined;
    if (why === 'change') {
      const { version } = this.selection(type, state);
      if (version === state.ledger.sentVersion || version === state.parkedVersion) return;
    }
    this.send(type);
  }

  private selection(type: XdsTypeUrl, state: TypeState): { version: string; resources: VersionedResource[] } {
    const snapshot = this.deps.watcher.current(this.identity?.key ?? '', type);
    if (state.wildcard) {
      return { version: snapshot.version, resources: [...snapshot.resources.values()] };
    }
    const resources = [...state.names].flatMap((name) => snapshot.resources.get(name) ?? []);
    return { version: typeVersion(resources), resources };
  }

  private send(type: XdsTypeUrl): void {
    const state = this.types.get(type);
    if (!state) return;
    const { version, resources } = this.selection(type, state);
    const nonce = String(++this.nonce);
    state.ledger.sentVersion = version;
    state.ledger.sentNonce = nonce;
    state.ledger.sentAt = this.now().toISOString();
    state.ledger.status = 'REQUESTED';
    // Once other content goes out, the rejected version is history: it may be sent again if it returns.
    if (version !== state.parkedVersion) state.parkedVersion = undefined;
    this.deps.metrics.responses.inc({ type: shortTypeName(type) });
    this.deps.logger.debug({ stream: this.id, proxy: this.identity?.id, type: shortTypeName(type), version, count: resources.length }, 'sent');
    state.inFlight = true;
    const more = this.io.send({ versionInfo: version, resources: resources.map((r) => r.any), canary: false, typeUrl: type, nonce, controlPlane: undefined, resourceErrors: [] });
    if (!more) this.blocked = true;
  }

  private now(): Date {
    return (this.deps.now ?? (() => new Date()))();
  }
}

/** "1.40.0" from the node's user_agent_build_version, which Envoy sends on a stream's first request. */
function envoyVersionOf(request: DiscoveryRequest): string | undefined {
  const version = request.node?.userAgentBuildVersion?.version;
  return version ? `${version.majorNumber}.${version.minorNumber}.${version.patch}` : request.node?.userAgentVersion || undefined;
}
