// What both ADS stream flavours (State of the World, sotw-stream.ts; incremental, delta-stream.ts) share:
// the proxy's identity from the first request (checked against its certificate), the ledger entry
// and cache watch that go with it, garbage requests counted and ignored, nonces, ACK and NACK
// bookkeeping and their metrics, and the transport's backpressure flag.

import type { Node } from '../../envoy/generated/envoy/config/core/v3/base.js';
import { isXdsTypeUrl, shortTypeName, type XdsTypeUrl } from '../../envoy/xds-types.js';
import type { Ledger, ProxyEntry, TypeLedger } from '../cache/ledger.js';
import type { ResourceWatcher } from '../cache/snapshot-cache.js';
import type { Logger } from 'pino';
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

/**
 * Ends a stream with an error status: 'invalid' for a malformed identity (gRPC INVALID_ARGUMENT),
 * 'denied' for a proxy that may not be served as what it claims (PERMISSION_DENIED).
 */
export type FailStream = (message: string, reason: 'invalid' | 'denied') => void;

/** How a stream reaches its transport (gRPC in ads-server.ts, a fake in tests). */
export interface StreamIo<Response> {
  /** Writes a response; false when the transport's buffer is full (wait for drained()). */
  send(response: Response): boolean;
  fail: FailStream;
}

/** "1.40.0" from the node's user_agent_build_version, which Envoy sends on a stream's first request. */
function envoyVersionOf(node: Node | undefined): string | undefined {
  const version = node?.userAgentBuildVersion?.version;
  return version ? `${version.majorNumber}.${version.minorNumber}.${version.patch}` : node?.userAgentVersion || undefined;
}

export abstract class AdsStreamBase<Response> {
  protected identity?: ProxyIdentity;
  protected entry?: ProxyEntry;
  protected closed = false;
  /** The transport's buffer is full: nothing is written until it drains. */
  protected blocked = false;
  private unwatch?: () => void;
  private nonce = 0;

  /**
   * @param peer what the client certificate proves: an identity, 'none' when it proves none, or
   *   undefined on a plaintext (insecure mode) connection.
   */
  constructor(
    protected readonly id: number,
    protected readonly deps: StreamDeps,
    protected readonly io: StreamIo<Response>,
    private readonly peer?: PeerIdentity | 'none',
  ) {}

  /** The cache changed these types of this proxy's key. */
  protected abstract onChange(types: readonly XdsTypeUrl[]): void;

  /** Which ADS flavour this stream speaks (shown by xds status). */
  protected abstract readonly api: 'delta' | 'sotw';

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unwatch?.();
    this.deps.ledger.close(this.id);
    if (this.identity) this.deps.metrics.streams.dec({ role: this.identity.role });
  }

  /**
   * Identifies the proxy on its first request, and checks a request's type and size: the type to
   * serve, or undefined when the request is to be ignored (or the stream was refused and closed).
   */
  protected admit(request: { node?: Node; typeUrl: string }, names: number): XdsTypeUrl | undefined {
    if (this.closed) return undefined;
    if (!this.identity && !this.start(request.node)) return undefined;
    const type = request.typeUrl;
    if (!isXdsTypeUrl(type)) {
      this.reject('unknown_type', `type_url "${type}" is not served here`);
      return undefined;
    }
    if (names > MAX_RESOURCE_NAMES) {
      this.reject('too_many_names', `${names} resource names for ${shortTypeName(type)}, more than ${MAX_RESOURCE_NAMES}`);
      return undefined;
    }
    return type;
  }

  private start(node: Node | undefined): boolean {
    const result = identify(node, this.peer);
    if (!result.ok) {
      this.deps.metrics.rejectedRequests.inc({ reason: 'identity' });
      this.deps.logger.warn({ stream: this.id, error: result.error }, 'stream refused');
      this.io.fail(result.error, result.reason);
      this.close();
      return false;
    }
    this.identity = result.identity;
    this.entry = this.deps.ledger.open(this.id, { ...this.identity, envoyVersion: envoyVersionOf(node), api: this.api }, this.now());
    this.unwatch = this.deps.watcher.watch(this.identity.key, (types) => this.onChange(types));
    this.deps.metrics.streams.inc({ role: this.identity.role });
    this.deps.logger.info({ stream: this.id, role: this.identity.role, proxy: this.identity.id }, 'proxy connected');
    this.deps.onConnect?.(this.identity);
    return true;
  }

  /** Garbage in one request must not cost the proxy its other subscriptions: log, count, ignore. */
  protected reject(reason: string, message: string): void {
    this.deps.metrics.rejectedRequests.inc({ reason });
    this.deps.logger.warn({ stream: this.id, proxy: this.identity?.id, reason }, `discovery request ignored: ${message}`);
  }

  protected nextNonce(): string {
    return String(++this.nonce);
  }

  /** Records a response of `type` going out with `version` and `nonce`. */
  protected recordSent(type: XdsTypeUrl, ledger: TypeLedger, version: string, nonce: string, count: number): void {
    ledger.sentVersion = version;
    ledger.sentNonce = nonce;
    ledger.sentAt = this.now().toISOString();
    ledger.status = 'REQUESTED';
    this.deps.metrics.responses.inc({ type: shortTypeName(type) });
    this.deps.logger.debug({ stream: this.id, proxy: this.identity?.id, type: shortTypeName(type), version, count }, 'sent');
  }

  protected recordAck(type: XdsTypeUrl, ledger: TypeLedger, version: string): void {
    this.observeAnswer(type, ledger, 'ACK');
    ledger.status = 'ACKED';
    ledger.ackedVersion = version;
    this.deps.metrics.acks.inc({ type: shortTypeName(type) });
  }

  /** Records a NACK of the last response; returns the version it rejected. */
  protected recordNack(type: XdsTypeUrl, ledger: TypeLedger, nonce: string, detail: string): string {
    const version = ledger.sentVersion ?? '';
    this.observeAnswer(type, ledger, 'NACK');
    ledger.status = 'NACKED';
    ledger.nack = { version, nonce, detail, at: this.now().toISOString() };
    this.deps.metrics.nacks.inc({ type: shortTypeName(type) });
    this.deps.logger.warn(
      { stream: this.id, proxy: this.identity?.id, type: shortTypeName(type), version, error_detail: detail },
      'proxy rejected configuration (NACK); keeping it parked until the content changes',
    );
    return version;
  }

  private observeAnswer(type: XdsTypeUrl, ledger: TypeLedger, answer: 'ACK' | 'NACK'): void {
    if (!ledger.sentAt || !this.identity) return;
    const seconds = (this.now().getTime() - Date.parse(ledger.sentAt)) / 1000;
    this.deps.metrics.answerSeconds.observe({ type: shortTypeName(type), role: this.identity.role, answer }, Math.max(0, seconds));
  }

  protected now(): Date {
    return (this.deps.now ?? (() => new Date()))();
  }
}
