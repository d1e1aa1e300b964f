// CPU accounting from /proc (Linux): how much CPU the proxies of a path spent on a transfer, and how
// much the rest of the machine spent while the benchmark ran (other tests, say), which is the noise.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticks: number | undefined;

/** USER_HZ: the unit of /proc's CPU times. */
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** CPU seconds (user + system, all threads) a process has used so far; undefined once it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) ": field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks();
  } catch {
    return undefined;
  }
}

/** Resident memory of a process in bytes (VmRSS); undefined once it is gone. */
export function processRssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** The sum over `pids`; a process that is gone counts 0. */
export function cpuSecondsOf(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + (processCpuSeconds(pid) ?? 0), 0);
}

/**
 * Busy CPU seconds of the whole machine so far (all CPUs), or undefined. Interrupt time counts: a task's
 * system time includes the softirq work (loopback networking) done on its behalf.
 */
function machineBusySeconds(): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    // cpu user nice system idle iowait irq softirq steal ...
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = [0, 1, 2, 5, 6].map((i) => fields[i]);
    if (busy.some((v) => v === undefined || Number.isNaN(v))) return undefined;
    return busy.reduce<number>((sum, v) => sum + (v ?? 0), 0) / clockTicks();
  } catch {
    return undefined;
  }
}

export interface BackgroundLoad {
  /** Wall-clock seconds of the window. */
  readonly seconds: number;
  /** CPU the machine spent outside this benchmark's processes, as cores busy on average. */
  readonly otherCores: number;
  /** CPU this benchmark's processes (runner, kubelet, proxies) spent, as cores busy on average. */
  readonly ownCores: number;
}

/**
 * Measures, over a window, the CPU used by everything but this benchmark: the machine's busy time minus
 * that of the runner and of `pids()` (every process the benchmark started). Approximate (interrupt work
 * lands on whichever task is running), but it says whether something else was competing.
 */
export class LoadWindow {
  private readonly startedAt = performance.now();
  private readonly machine0 = machineBusySeconds();
  private readonly own0: number;

  constructor(private readonly pids: () => readonly number[]) {
    this.own0 = this.ownSeconds();
  }

  private ownSeconds(): number {
    const self = process.cpuUsage();
    return (self.user + self.system) / 1e6 + cpuSecondsOf(this.pids());
  }

  end(): BackgroundLoad | undefined {
    const machine1 = machineBusySeconds();
    if (this.machine0 === undefined || machine1 === undefined) return undefined;
    const seconds = (performance.now() - this.startedAt) / 1000;
    const own = this.ownSeconds() - this.own0;
    const other = Math.max(0, machine1 - this.machine0 - own);
    return { seconds, otherCores: other / seconds, ownCores: own / seconds };
  }
}
