// The connect-terminator as the integration tests run it: its own process, beside the edge Envoys.
import { join } from 'node:path';
import type { ProcessHandle, ProcessSet } from './processes.js';
import { waitFor } from './wait.js';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * Starts a connect-terminator listening on the Unix socket `socket`, under `prefix` when given (`ip
 * netns exec <ns>`: it then dials targets in that namespace); resolves once it listens.
 */
export async function startConnectTerminator(processes: ProcessSet, socket: string, name = 'connect-terminator', prefix: readonly string[] = []): Promise<ProcessHandle> {
  const [command, ...prefixArgs] = [...prefix, process.execPath];
  const handle = await processes.start({
    name,
    command,
    args: [...prefixArgs, '--import', 'tsx', join(ROOT, 'connect-terminator/cli.ts'), '--listen', socket],
    cwd: ROOT,
  });
  await waitFor(`${name} listening on ${socket}`, () => {
    if (handle.exitInfo() !== undefined) throw new Error(`${name} exited:\n${handle.logTail(20)}`);
    return handle.logTail(5).includes('CONNECT terminator listening');
  }, { timeoutMs: 20_000, intervalMs: 50 });
  return handle;
}
