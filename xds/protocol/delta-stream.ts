// One incremental (delta) ADS stream: the proxy subscribes and unsubscribes resource names (or "*")
// per type, and is sent only what changed: resources whose version differs from what it has, and the
// names of resources it has that are gone. The server keeps, per type, what the proxy holds (name →
// version: from what was sent, and from initial_resource_versions on a reconnect), so a proxy that
// moves to another replica is not sent what it already has.
//
// ACK and NACK as in SotW (error_detail on a request carrying the response's nonce); a NACKed response
// is undone in that view (the proxy kept its old resources) and its versions are parked until they
// change. Flow control as in SotW: one response per type in flight, nothing while the transport is
// full; changes meanwhile are folded into the next response.

import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource } from '../../envoy/generated/envoy/service/discovery/v3/discovery.js';
import { ADS_ORDER, shortTypeName, type XdsTypeUrl } from '../../envoy/xds-types.js';
import type { TypeLedger } from '../cache/ledger.js';
import type { VersionedResource } from '../cache/snapshot.js';
import { AdsStreamBase } from './stream-base.js';


const WILDCARD = '*';

interface DeltaTypeState {
  readonly ledger: TypeLedger;
  wildcard: boolean;
  readonly names: Set<string>;
  /** What the proxy holds: name → version. Names it asked for that do not exist are told once ('' here). */
  readonly held: Map<string, string>;
  /** Versions the proxy rejected, by name: not sent again until they change. */
  readonly parked: Map<string, string>;
  /** The in-flight response's changes to `held`, to undo on a NACK: name → version before (undefined: absent). */
  undo?: Map<string, string | undefined>;
  inFlight: boolean;
  /** Something may be owed: look again once the type may be sent. */
  owed: boolean;
  /** The first request of the type is answered even when there is nothing to send. */
  answered: boolean;
}

/** A name the proxy asked for that does not exist, told to it once in removed_resources. */
const ABSENT = '';

export class DeltaStream extends AdsStreamBase<DeltaDiscoveryResponse> {
  protected readonly api = 'delta';
  private readonly types = new Map<XdsTypeUrl, DeltaTypeState>();


  handle(request: DeltaDiscoveryRequest): void {
    const type = this.admit(request, request.resourceNamesSubscribe.length + request.resourceNamesUnsubscribe.length);
    if (type === undefined) return;
    let state = this.types.get(type);
    if (!state) {
      state = this.open(type, request);
    } else if (request.responseNonce !== '') {
      if (request.responseNonce === state.ledger.sentNonce && state.inFlight) {
        this.answered(type, state, request);
      } else {
        this.deps.logger.debug({ stream: this.id, type, nonce: request.responseNonce }, 'stale nonce: its ACK or NACK is ignored');
      }
    }
    this.resubscribe(state, request);
    this.respond(type);
  }

  /** The transport can take more: what was held back goes out, newest state only, in ADS order. */
  drained(): void {
    if (this.closed || !this.blocked) return;
    this.blocked = false;
    for (const type of ADS_ORDER) if (this.types.get(type)?.owed && !this.blocked) this.respond(type);
  }

  protected onChange(types: readonly XdsTypeUrl[]): void {
    for (const type of ADS_ORDER) if (types.includes(type) && this.types.has(type)) this.respond(type);
  }

  /** The type's first request: wildcard when it names nothing (legacy) or "*", and what the proxy already holds. */
  private open(type: XdsTypeUrl, request: DeltaDiscoveryRequest): DeltaTypeState {
    const ledger: TypeLedger = { status: 'REQUESTED', subscribed: [] };
    const held = new Map(Object.entries(request.initialResourceVersions));
    const state: DeltaTypeState = { ledger, wildcard: request.resourceNamesSubscribe.length === 0, names: new Set(), held, parked: new Map(), inFlight: false, owed: true, answered: false };
    this.types.set(type, state);
    this.entry?.types.set(type, ledger);
    return state;
  }

  private answered(type: XdsTypeUrl, state: DeltaTypeState, request: DeltaDiscoveryRequest): void {
    state.inFlight = false;
    if (request.errorDetail) {
      this.recordNack(type, state.ledger, request.responseNonce, request.errorDetail.message);
      // The proxy kept what it had: undo the response in our view, and park what it refused.
      for (const [name, before] of state.undo ?? []) {
        const refused = state.held.get(name);
        if (refused !== undefined && refused !== ABSENT) state.parked.set(name, refused);
        if (before === undefined) state.held.delete(name);
        else state.held.set(name, before);
      }
    } else {
      this.recordAck(type, state.ledger, state.ledger.sentVersion ?? '');
    }
    state.undo = undefined;
    state.owed = true;
  }

  private resubscribe(state: DeltaTypeState, request: DeltaDiscoveryRequest): void {
    for (const name of request.resourceNamesSubscribe) {
      if (name === WILDCARD) state.wildcard = true;
      else if (!state.names.has(name)) {
        state.names.add(name);
        state.owed = true;
      }
    }
    for (const name of request.resourceNamesUnsubscribe) {
      if (name === WILDCARD) state.wildcard = false;
      else state.names.delete(name);
      // The proxy drops what it unsubscribed from: it holds it no longer.
      if (name !== WILDCARD && !state.wildcard) state.held.delete(name);
    }
    if (request.resourceNamesSubscribe.includes(WILDCARD)) state.owed = true;
    state.ledger.subscribed = [...(state.wildcard ? [WILDCARD] : []), ...[...state.names].sort()];
  }

  /** Sends what the proxy lacks now, if it may; else remembers to look again. */
  private respond(type: XdsTypeUrl): void {
    const state = this.types.get(type);
    if (!state) return;
    if (state.inFlight || this.blocked) {
      if (!state.owed) this.deps.metrics.deferred.inc({ type: shortTypeName(type) });
      state.owed = true;
      return;
    }
    state.owed = false;
    const snapshot = this.deps.watcher.current(this.identity?.key ?? '', type);
    const wanted = (name: string): boolean => state.wildcard || state.names.has(name);
    const changed: VersionedResource[] = [];
    for (const resource of snapshot.resources.values()) {
      if (!wanted(resource.name) || state.held.get(resource.name) === resource.version || state.parked.get(resource.name) === resource.version) continue;
      changed.push(resource);
    }
    const removed: string[] = [];
    for (const [name, version] of state.held) if (version !== ABSENT && !snapshot.resources.has(name)) removed.push(name);
    // Names asked for that do not exist: said once, so the proxy stops waiting for them.
    for (const name of state.names) if (!snapshot.resources.has(name) && !state.held.has(name)) removed.push(name);
    if (changed.length === 0 && removed.length === 0 && state.answered) return;
    state.answered = true;
    const undo = new Map<string, string | undefined>();
    for (const resource of changed) {
      undo.set(resource.name, state.held.get(resource.name));
      state.held.set(resource.name, resource.version);
      state.parked.delete(resource.name);
    }
    for (const name of removed) {
      undo.set(name, state.held.get(name));
      // Remembered as absent only while asked for by name (said once); a wildcard's removal is forgotten.
      if (state.names.has(name)) state.held.set(name, ABSENT);
      else state.held.delete(name);
    }
    for (const name of state.parked.keys()) if (!snapshot.resources.has(name)) state.parked.delete(name);
    state.undo = undo;
    const nonce = this.nextNonce();
    this.recordSent(type, state.ledger, snapshot.version, nonce, changed.length);
    state.inFlight = true;
    const resources: Resource[] = changed
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((r) => ({ name: r.name, version: r.version, resource: r.any, aliases: [], resourceName: undefined, ttl: undefined, cacheControl: undefined, metadata: undefined }));
    const more = this.io.send({ systemVersionInfo: snapshot.version, resources, typeUrl: type, removedResources: removed.sort(), removedResourceNames: [], nonce, controlPlane: undefined, resourceErrors: [] });
    if (!more) this.blocked = true;
  }
}
