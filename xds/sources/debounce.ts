import type { TimerFunctions } from './watch-file.js';

/**
 * Calls `fire` once changes stop for `debounceMs`, but never later than `maxDelayMs` after the first
 * change still pending, so a steady stream of changes cannot hold delivery back for ever; and never
 * sooner than `minIntervalMs` after the last call, so a steady stream is delivered in batches (each
 * delivery costs a translation of the fleet) instead of once per change. Changes that come while that
 * interval runs are delivered as it ends, without waiting for quiet: the wait then is the interval,
 * which may exceed `maxDelayMs` if configured longer.
 */
export class Debouncer {
  private quietTimer: unknown;
  private maxTimer: unknown;
  private coolingTimer: unknown;
  private pendingWhileCooling = false;

  constructor(
    private readonly timers: TimerFunctions,
    private readonly debounceMs: number,
    private readonly maxDelayMs: number,
    private readonly fire: () => void,
    private readonly minIntervalMs = 0,
  ) {}

  /** Records a change. */
  poke(): void {
    if (this.coolingTimer !== undefined) {
      // Delivered when the interval since the last call is over.
      this.pendingWhileCooling = true;
      return;
    }
    if (this.quietTimer !== undefined) this.timers.clearTimeout(this.quietTimer);
    this.quietTimer = this.timers.setTimeout(() => this.flush(), this.debounceMs);
    this.maxTimer ??= this.timers.setTimeout(() => this.flush(), this.maxDelayMs);
  }

  /** Drops whatever is pending without firing. */
  cancel(): void {
    for (const timer of [this.quietTimer, this.maxTimer, this.coolingTimer]) {
      if (timer !== undefined) this.timers.clearTimeout(timer);
    }
    this.quietTimer = this.maxTimer = this.coolingTimer = undefined;
    this.pendingWhileCooling = false;
  }

  private flush(): void {
    this.cancel();
    this.fire();
    if (this.minIntervalMs <= 0) return;
    this.coolingTimer = this.timers.setTimeout(() => {
      this.coolingTimer = undefined;
      if (this.pendingWhileCooling) this.flush();
    }, this.minIntervalMs);
  }
}
