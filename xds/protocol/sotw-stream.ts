// One State-of-the-World ADS stream: identity from the first request, a nonce and version per type,
// ACK and NACK told apart by error_detail, stale nonces ignored, and a NACKed version parked until the
// content changes, so a rejected config is never resent in a loop.
//
// Flow control, so that a slow proxy gets the latest state when it catches up, never a queue of stale
// ones: at most one response per type is in flight (the next waits for the proxy's ACK or NACK, as
// the xDS protocol pairs responses with requests), and while the transport reports its buffer full
// nothing is written at all. Changes meanwhile only mark the type; what is sent then is the newest.

import type { DiscoveryRequest, DiscoveryResponse } from '../../envoy/generated/envoy/service/discovery/v3/discovery.js';
import { ADS_ORDER, WILDCARD_TYPES, shortTypeName, type XdsTypeUrl } from '../../envoy/xds-types.js';
import type { TypeLedger } from '../cache/ledger.js';
import { typeVersion, type VersionedResource } from '../cache/snapshot.js';
import { AdsStreamBase } from './stream-base.js';



interface TypeState {
  readonly type: XdsTypeUrl;
  readonly ledger: TypeLedger;
  wildcard: boolean;
  names: ReadonlySet<string>;
  /** The version last NACKed: not sent again until the content changes. */
  parkedVersion?: string;
  /** A response of this type awaits the proxy's ACK or NACK. */
  inFlight: boolean;
  /** Something is owed once the type may be sent: news of a change, or an answer to a request. */
  owed?: 'change' | 'request';
}

export class SotwStream extends AdsStreamBase<DiscoveryResponse> {
  protected readonly api = 'sotw';
  private readonly types = new Map<XdsTypeUrl, TypeState>();


  handle(request: DiscoveryRequest): void {
    const type = this.admit(request, request.resourceNames.length);
    if (type === undefined) return;
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
    // An answer to the response in flight; the same nonce again (a new subscription) answers nothing.
    if (state.inFlight) {
      if (request.errorDetail) state.parkedVersion = this.recordNack(type, state.ledger, request.responseNonce, request.errorDetail.message);
      else this.recordAck(type, state.ledger, request.versionInfo);
      state.inFlight = false;
    }
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

  protected onChange(types: readonly XdsTypeUrl[]): void {
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
    const nonce = this.nextNonce();
    this.recordSent(type, state.ledger, version, nonce, resources.length);
    // Once other content goes out, the rejected version is history: it may be sent again if it returns.
    if (version !== state.parkedVersion) state.parkedVersion = undefined;
    state.inFlight = true;
    const more = this.io.send({ versionInfo: version, resources: resources.map((r) => r.any), canary: false, typeUrl: type, nonce, controlPlane: undefined, resourceErrors: [] });
    if (!more) this.blocked = true;
  }
}
