import type { TimerFunctions } from './watch-file.js';

/**
 * Calls `fire` once changes stop for `debounceMs`, but never later than `maxDelayMs` after the first
 * change still pending, so a steady stream of changes cannot hold delivery back for ever.
 */
export class Debouncer {
  private quietTimer: unknown;
  private maxTimer: unknown;

  constructor(
    private readonly timers: TimerFunctions,
    private readonly debounceMs: number,
    private readonly maxDelayMs: number,
    private readonly fire: () => void,
  ) {}

  /** Records a change. */
  poke(): void {
    if (this.quietTimer !== undefined) this.timers.clearTimeout(this.quietTimer);
    this.quietTimer = this.timers.setTimeout(() => this.flush(), this.debounceMs);
    this.maxTimer ??= this.timers.setTimeout(() => this.flush(), this.maxDelayMs);
  }

  /** Drops whatever is pending without firing. */
  cancel(): void {
    for (const timer of [this.quietTimer, this.maxTimer]) {
      if (timer !== undefined) this.timers.clearTimeout(timer);
    }
    this.quietTimer = this.maxTimer = undefined;
  }

  private flush(): void {
    this.cancel();
    this.fire();
  }
}
