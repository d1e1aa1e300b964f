// Waiting on conditions instead of sleeping: every wait in the integration tests polls a probe against a
// deadline, so a test is as fast as the system under test allows and fails with a message saying what it
// was waiting for (and why the last attempt failed) instead of timing out anonymously.
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Pause between probes (default 50 ms). */
  intervalMs?: number;
  /** Stop early, rejecting with the signal's reason (e.g. the process being waited on has died). */
  signal?: AbortSignal;
}

/** A value the probe may return: anything falsy means "not yet". */
export type Probe<T> = () => Promise<T | undefined | false> | T | undefined | false;

/**
 * A pause for the poll loop itself. Not for tests to "wait a bit": wait for a condition with waitFor.
 */
export async function delay(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, signal === undefined ? undefined : { signal });
  } catch (err) {
    // timers/promises rejects with a generic AbortError; the reason says why the wait was abandoned.
    if (signal?.aborted === true) throw signal.reason;
    throw err;
  }
}

/**
 * Polls `probe` until it returns a truthy value and resolves with that value. A probe that throws counts as
 * "not yet" (a port that refuses connections is the normal state while a process starts), but the last
 * error is kept for the timeout message. A probe that hangs does not stall the wait past the deadline.
 */
export async function waitFor<T>(what: string, probe: Probe<T>, opts: WaitOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const started = performance.now();
  const deadline = started + timeoutMs;
  let lastError: unknown;
  let sawError = false;
  let attempts = 0;
  for (;;) {
    opts.signal?.throwIfAborted();
    attempts += 1;
    try {
      const value = await withDeadline(Promise.resolve().then(probe), deadline - performance.now(), opts.signal);
      if (value === TIMED_OUT) {
        lastError = new Error(`the probe was still pending at the deadline`);
        sawError = true;
      } else if (value) {
        return value;
      }
    } catch (err) {
      // The abort is the caller's verdict, not a probe failure: surface it as is.
      if (opts.signal?.aborted === true) throw opts.signal.reason;
      lastError = err;
      sawError = true;
    }
    const remaining = deadline - performance.now();
    if (remaining <= 0) {
      const elapsed = Math.round(performance.now() - started);
      const last = sawError ? `last probe error: ${describeError(lastError)}` : 'the probe never threw, it kept returning a falsy value';
      throw new Error(`timed out after ${timeoutMs} ms (${elapsed} ms, ${attempts} attempts) waiting for ${what}; ${last}`, {
        cause: lastError,
      });
    }
    await delay(Math.min(intervalMs, remaining), opts.signal);
  }
}

const TIMED_OUT = Symbol('timed out');

// Resolves with the promise's value, or with TIMED_OUT once `ms` has passed; the timer is cleared either way
// so that a finished wait never keeps the event loop alive.
async function withDeadline<T>(promise: Promise<T>, ms: number, signal?: AbortSignal): Promise<T | typeof TIMED_OUT> {
  if (ms <= 0) ms = 1; // Always give the probe one chance, even if the interval overshot the deadline.
  const controller = new AbortController();
  const onAbort = (): void => controller.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await Promise.race([
      promise,
      sleep(ms, TIMED_OUT, { signal: controller.signal }).catch((): typeof TIMED_OUT => {
        if (signal?.aborted === true) throw signal.reason;
        return TIMED_OUT;
      }),
    ]);
  } finally {
    controller.abort();
    signal?.removeEventListener('abort', onAbort);
  }
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === undefined ? err.message : `${err.message} (${code})`;
  }
  return String(err);
}
