// One Node watch request and how it ended, plus the error wording shared by the Kubernetes source.

/** How a watch ended, which decides what the source does next. */
export type WatchOutcome =
  /** Ended normally after it had been useful (the server's timeoutSeconds, the client's 30 s quiet timeout). */
  | { readonly kind: 'closed' }
  /** Ended cleanly but at once and empty: resuming is right, but only after a backoff. */
  | { readonly kind: 'closedAtOnce' }
  /** 410 Gone: the resourceVersion we asked for is compacted away. */
  | { readonly kind: 'gone' }
  | { readonly kind: 'failed'; readonly error: unknown }
  | { readonly kind: 'stale' }
  | { readonly kind: 'stopped' };

/** A clean close this soon after opening, with no event, counts as "closed at once". */
const AT_ONCE_MS = 1000;

/**
 * Tracks one watch request. The client reports through two callbacks (events, done) and a promise
 * (the AbortController once the response headers are in), in an order that is not fixed; the session
 * turns them into exactly one outcome and ignores whatever arrives after it.
 */
export class WatchSession {
  private ended_ = false;
  private controller: AbortController | undefined;
  private openedAt: number | undefined;
  private events = 0;

  constructor(
    private readonly now: () => number,
    private readonly healthyAfterMs: number,
    private readonly onOpenChange: (open: boolean) => void,
    private readonly onEnd: (outcome: WatchOutcome) => void,
  ) {}

  get ended(): boolean {
    return this.ended_;
  }

  /** True while the response is streaming. */
  get isOpen(): boolean {
    return this.openedAt !== undefined && !this.ended_;
  }

  /** The client's watch() resolved: the request is underway and can be aborted. */
  opened(controller: AbortController): void {
    if (this.ended_) {
      controller.abort();
      return;
    }
    this.controller = controller;
    this.markOpen();
  }

  /** An event arrived (it may beat `opened`, which only proves the request was made). */
  event(): void {
    this.events++;
    this.markOpen();
  }

  /** Delivered an event or stayed open long enough that the connection is evidently fine. */
  healthy(): boolean {
    return this.events > 0 || (this.openedAt !== undefined && this.now() - this.openedAt >= this.healthyAfterMs);
  }

  /** The client's `done` callback: null for a clean end, else the error. */
  done(error: unknown): void {
    if (this.ended_) return;
    const status = httpStatusOf(error);
    if (status === 410) return this.end({ kind: 'gone' });
    // After the response started, the client's TimeoutError means 30 s without a byte: a quiet watch.
    const quiet = this.openedAt !== undefined && error instanceof Error && error.name === 'TimeoutError';
    if (error !== null && error !== undefined && !quiet) return this.end({ kind: 'failed', error });
    const atOnce = this.events === 0 && (this.openedAt === undefined || this.now() - this.openedAt < AT_ONCE_MS);
    this.end({ kind: atOnce ? 'closedAtOnce' : 'closed' });
  }

  /** Ends the session (aborting the request) with `outcome`, unless it already ended. */
  end(outcome: WatchOutcome): void {
    if (this.ended_) return;
    this.ended_ = true;
    this.controller?.abort();
    if (this.openedAt !== undefined) this.onOpenChange(false);
    this.onEnd(outcome);
  }

  private markOpen(): void {
    if (this.openedAt !== undefined) return;
    this.openedAt = this.now();
    this.onOpenChange(true);
  }
}

/** What an ERROR watch event means; its object is a Status such as `{code: 410, reason: "Expired"}`. */
export function errorEventOutcome(status: unknown): WatchOutcome {
  const { code, message } = (typeof status === 'object' && status !== null ? status : {}) as { code?: unknown; message?: unknown };
  if (code === 410) return { kind: 'gone' };
  const detail = typeof message === 'string' && message !== '' ? message : 'no message';
  return { kind: 'failed', error: new Error(`watch ERROR event (${typeof code === 'number' ? code : 'no code'}): ${detail}`) };
}

/** The HTTP status of a failed list (ApiException.code) or watch (statusCode), if there is one. */
export function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, statusCode } = error as { code?: unknown; statusCode?: unknown };
  if (typeof statusCode === 'number') return statusCode;
  // Node's system errors carry string codes (ECONNREFUSED); only numbers are HTTP statuses.
  return typeof code === 'number' ? code : undefined;
}

/**
 * One line for a log: `HTTP 403: nodes is forbidden: …` or `fetch failed: connect ECONNREFUSED …`.
 * Stable across retries of the same failure, since "once per change" logging compares these.
 */
export function describeError(error: unknown): string {
  const status = httpStatusOf(error);
  if (status !== undefined) {
    const detail = statusDetail(error);
    return detail ? `HTTP ${status}: ${detail}` : `HTTP ${status}`;
  }
  if (!(error instanceof Error)) return String(error);
  const cause: unknown = error.cause;
  const causeText =
    cause instanceof Error ? cause.message || String((cause as { code?: unknown }).code ?? cause.name) : undefined;
  return causeText && !error.message.includes(causeText) ? `${error.message}: ${causeText}` : error.message || error.name;
}

/** The API's own words (a Status object's message), else the client's short message. */
function statusDetail(error: unknown): string | undefined {
  const raw = (error as { body?: unknown }).body;
  let body: unknown = raw;
  if (typeof raw === 'string') {
    try {
      body = JSON.parse(raw) as unknown;
    } catch {
      return raw.slice(0, 200) || undefined;
    }
  }
  const message = typeof body === 'object' && body !== null ? (body as { message?: unknown }).message : undefined;
  if (typeof message === 'string' && message !== '') return message;
  // ApiException's own message spans lines with headers and body; keep only the watch's short text.
  return error instanceof Error && !error.message.includes('\n') ? error.message : undefined;
}
