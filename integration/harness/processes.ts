// Child processes for integration tests (Envoy, mostly). Each one runs in its own process group so that
// stopping it also stops anything it forked, its output goes to a log file in a per-run directory
// (removed when the runner exits, pass or fail; EDGE_TUNNEL_KEEP_LOGS=1 keeps it for a post-mortem) and
// to an in-memory tail that a failing test prints. Groups that are
// still running when the test runner exits are SIGKILLed so that no Envoy outlives the tests holding ports.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface ProcessOptions {
  /** Short label used in log file names and failure reports, e.g. "cloud-envoy". */
  name: string;
  command: string;
  args: readonly string[];
  /** Added to (and overriding) the runner's environment; the child still sees PATH etc. */
  env?: Record<string, string>;
  cwd?: string;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProcessHandle {
  readonly name: string;
  /** Also the process group id: the child is the leader of its own group. */
  readonly pid: number;
  readonly logFile: string;
  /** Resolves (never rejects) when the process has exited. */
  readonly exited: Promise<ExitInfo>;
  /**
   * Resolves once stdout and stderr have reached EOF, i.e. the log is complete. That can be after `exited`
   * (the last output is still in the pipe) or much later (something else in the group holds the pipes).
   */
  readonly outputClosed: Promise<void>;
  /** The exit status once known, undefined while running. */
  exitInfo(): ExitInfo | undefined;
  /** The last `lines` lines of combined stdout and stderr (at most TAIL_LINES are kept). */
  logTail(lines?: number): string;
  /** Signals the whole group, escalating to SIGKILL if the leader has not exited after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

const TAIL_LINES = 200;
// A runaway line (a config dump on one line) must not turn the tail into megabytes.
const MAX_LINE_CHARS = 4096;
// After SIGKILL the kernel tears the process down promptly; waiting longer means something is badly wrong.
const SIGKILL_WAIT_MS = 5000;

let runDirectory: string | undefined;

/**
 * The per-run directory holding the log files and everything else a run writes (certificates, nodes
 * files, sockets), created on first use and removed when the runner exits.
 */
export function runDir(): string {
  if (runDirectory === undefined) {
    runDirectory = mkdtempSync(path.join(tmpdir(), 'edge-tunnel-it-'));
    installSafetyNet();
  }
  return runDirectory;
}

function removeRunDir(): void {
  if (runDirectory === undefined || process.env.EDGE_TUNNEL_KEEP_LOGS === '1') return;
  rmSync(runDirectory, { recursive: true, force: true });
  runDirectory = undefined;
}

// Process groups started by this runner and not yet known to be gone, for the exit-time safety net.
const liveGroups = new Set<number>();
let safetyNetInstalled = false;
let logSequence = 0;

/**
 * Spawns a process as the leader of a new process group. Resolves once the OS has started it (rejects if
 * the command cannot be spawned, e.g. ENOENT), so a handle always has a pid.
 */
export async function startProcess(opts: ProcessOptions): Promise<ProcessHandle> {
  installSafetyNet();
  logSequence += 1;
  const logFile = path.join(runDir(), `${String(logSequence).padStart(2, '0')}-${sanitize(opts.name)}.log`);
  const log = createWriteStream(logFile);
  // Losing the log file (disk full, directory removed) must not take the test runner down with it.
  log.on('error', (err) => process.emitWarning(`log file ${logFile} for ${opts.name}: ${err.message}`));
  log.write(`$ ${[opts.command, ...opts.args].join(' ')}\n`);

  const child = spawn(opts.command, opts.args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
  } catch (err) {
    log.end();
    throw new Error(`cannot start ${opts.name} (${opts.command}): ${(err as Error).message}`, { cause: err });
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot start ${opts.name}: spawned without a pid`);
  liveGroups.add(pid);
  return new ChildHandle(opts.name, pid, logFile, child, log);
}

class ChildHandle implements ProcessHandle {
  readonly exited: Promise<ExitInfo>;
  readonly outputClosed: Promise<void>;
  private exit: ExitInfo | undefined;
  private readonly tail: string[] = [];
  private partial = '';

  constructor(
    readonly name: string,
    readonly pid: number,
    readonly logFile: string,
    child: ChildProcess,
    log: NodeJS.WritableStream,
  ) {
    const collect = (chunk: Buffer): void => {
      log.write(chunk);
      this.addToTail(chunk.toString('utf8'));
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exited = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    // 'close' comes after both pipes hit EOF, i.e. after every member of the group that inherited them is
    // gone too; only then is the log complete.
    this.outputClosed = new Promise<void>((resolve) => {
      child.once('close', () => {
        this.flushPartial();
        log.end(`# exited: ${describeExit(this.exit)}\n`);
        resolve();
      });
    });
  }

  exitInfo(): ExitInfo | undefined {
    return this.exit;
  }

  logTail(lines = 60): string {
    const all = this.partial === '' ? this.tail : [...this.tail, this.partial];
    return all.slice(-lines).join('\n');
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
    if (this.exit === undefined) {
      signalGroup(this.pid, signal);
      if (!(await settlesWithin(this.exited, graceMs))) {
        signalGroup(this.pid, 'SIGKILL');
        if (!(await settlesWithin(this.exited, SIGKILL_WAIT_MS))) {
          throw new Error(`${this.name} (pid ${this.pid}) survived SIGKILL for ${SIGKILL_WAIT_MS} ms`);
        }
      }
    }
    // The leader is gone, but anything it forked may linger in the group (and keep the log pipes open).
    signalGroup(this.pid, 'SIGKILL');
    liveGroups.delete(this.pid);
  }

  private addToTail(text: string): void {
    const pieces = (this.partial + text).split('\n');
    this.partial = pieces.pop() ?? '';
    for (const line of pieces) this.pushLine(line);
    if (this.partial.length > MAX_LINE_CHARS) this.flushPartial();
  }

  private flushPartial(): void {
    if (this.partial !== '') this.pushLine(this.partial);
    this.partial = '';
  }

  private pushLine(line: string): void {
    this.tail.push(line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line);
    if (this.tail.length > TAIL_LINES) this.tail.splice(0, this.tail.length - TAIL_LINES);
  }
}

/** The processes of one test (or suite): stopped together, and reported together when the test fails. */
export class ProcessSet {
  private readonly members: ProcessHandle[] = [];

  /** Starts a process and adds it to the set. */
  async start(opts: ProcessOptions): Promise<ProcessHandle> {
    return this.add(await startProcess(opts));
  }

  add(handle: ProcessHandle): ProcessHandle {
    this.members.push(handle);
    return handle;
  }

  get handles(): readonly ProcessHandle[] {
    return this.members;
  }

  /** Stops every member in parallel; every stop is attempted even if some fail. */
  async stopAll(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
    const results = await Promise.allSettled(this.members.map((h) => h.stop(signal, graceMs)));
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failures.length > 0) {
      throw new AggregateError(
        failures.map((f) => f.reason),
        `stopAll: ${failures.length} of ${this.members.length} processes did not stop`,
      );
    }
  }

  /** Every member's status and log tail, meant to be printed when a test fails. */
  describeFailure(lines = 60): string {
    if (this.members.length === 0) return '(no processes were started)';
    return this.members
      .map((h) => {
        const status = h.exitInfo() === undefined ? 'running' : `exited ${describeExit(h.exitInfo())}`;
        const header = `----- ${h.name} (pid ${h.pid}, ${status}) log: ${h.logFile} -----`;
        const tail = h.logTail(lines);
        return `${header}\n${tail === '' ? '(no output)' : tail}`;
      })
      .join('\n');
  }
}

function describeExit(exit: ExitInfo | undefined): string {
  if (exit === undefined) return 'unknown';
  return exit.signal === null ? `with code ${exit.code}` : `by ${exit.signal}`;
}

// Signals a process group; a group that no longer exists is already what we want.
function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function sanitize(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '_');
}

// The safety net: the children are in their own groups, so neither the runner's exit nor a Ctrl-C on the
// terminal reaches them. On 'exit' only synchronous work is possible, which process.kill is.
function killRemainingGroups(): void {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // ESRCH: already gone. Nothing else can be done during exit anyway.
    }
  }
  liveGroups.clear();
}

function installSafetyNet(): void {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  const cleanUp = (): void => {
    killRemainingGroups();
    removeRunDir();
  };
  process.on('exit', cleanUp);
  // A signal's default action ends the runner without an 'exit' event. Clean up, then, if nobody else
  // handles the signal, re-raise it so that the runner still dies of it as it would have.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      cleanUp();
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}
