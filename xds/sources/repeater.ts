// A task run now and again a fixed interval after each run ends (never two at once), until stopped:
// the loop of the tunnel prober and the leader election.

export class Repeater {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private halted = false;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly intervalMs: number,
  ) {}

  /** True once stop() was called: a long task checks it to end early. */
  get stopped(): boolean {
    return this.halted;
  }

  start(): void {
    const tick = (): void => {
      if (this.halted) return;
      this.running = this.task().finally(() => {
        if (!this.halted) this.timer = setTimeout(tick, this.intervalMs);
      });
    };
    tick();
  }

  /** Resolves once the run in progress, if any, has ended; none follows. */
  async stop(): Promise<void> {
    this.halted = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
