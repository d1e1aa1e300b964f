// Small helpers shared by the tests and the demos: steps that print every process's log when they
// fail, a process listing, and stopping on Ctrl-C.

import { it, type TestContext } from 'node:test';
import type { ProcessHandle } from './processes.js';

/** Stops `running` once on SIGINT or SIGTERM (the demos' Ctrl-C), saying so, then exits. */
export function stopOnSignals(running: { stop(): Promise<void> }, say: (line: string) => void): void {
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    say('\nstopping …');
    await running.stop();
    say('stopped.');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

export function processLines(handles: readonly ProcessHandle[]): string {
  return handles.map((h) => `    ${h.name.padEnd(16)} pid ${String(h.pid).padEnd(8)} log ${h.logFile}`).join('\n');
}

/**
 * Declares test steps that print every process's log tail when they fail, so a red run explains
 * itself. `logs` is called only when a step fails (the processes start in a `before` hook).
 */
export function stepsWithLogs(logs: () => string | undefined): (name: string, fn: (t: TestContext) => Promise<void>) => void {
  return (name, fn) => {
    it(name, async (t) => {
      try {
        await fn(t);
      } catch (error) {
        process.stderr.write(`\n--- logs after failure of "${name}" ---\n${logs() ?? ''}\n`);
        throw error;
      }
    });
  };
}
