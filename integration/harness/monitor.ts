// Load for tests that change something under running traffic: a round of requests, over and over in
// the background, with every failure kept (time and message) for the assertion at the end.

import { delay } from './wait.js';

/** Requests made over and over in the background while something changes under them (a certificate rotation); any failure is kept. */
export interface Monitor {
  readonly rounds: number;
  stop(): Promise<{ rounds: number; failures: string[] }>;
}

export function monitor(round: () => Promise<void>): Monitor {
  let stopping = false;
  let rounds = 0;
  const failures: string[] = [];
  const started = performance.now();
  const loop = (async () => {
    while (!stopping) {
      try {
        await round();
        rounds += 1;
      } catch (error) {
        failures.push(`${Math.round(performance.now() - started)} ms: ${(error as Error).message}`);
      }
      // Paces the load; the loop waits on nothing.
      await delay(20);
    }
  })();
  return {
    get rounds() {
      return rounds;
    },
    async stop() {
      stopping = true;
      await loop;
      return { rounds, failures };
    },
  };
}
