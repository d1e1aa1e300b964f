// Retry spacing shared by the sources: a source that keeps failing retries ever more slowly, never
// more than twice a minute, and at once again after it recovered.

export const BACKOFF_INITIAL_MS = 1000;
export const BACKOFF_MAX_MS = 30_000;

/** 1 s, 2 s, 4 s … capped at 30 s, for the nth consecutive failure. */
export function backoffMs(failures: number): number {
  return Math.min(BACKOFF_INITIAL_MS * 2 ** Math.max(0, failures - 1), BACKOFF_MAX_MS);
}
