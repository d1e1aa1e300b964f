import { existsSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

/** The timer functions a debounced watch needs; injectable so tests can control time. */
export interface TimerFunctions {
  // Method syntax on purpose: its parameters are checked bivariantly, so both the global
  // clearTimeout (which wants a NodeJS.Timeout) and fakes with their own handle type fit. The handle
  // is opaque here: it only ever goes back to the clearTimeout it came with.
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const globalTimers: TimerFunctions = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: globalThis.clearTimeout,
};

export interface FileWatchOptions {
  readonly debounceMs: number;
  readonly timers: TimerFunctions;
  /** Called once a burst of events has been quiet for `debounceMs`. */
  readonly onChange: () => void;
  /** The watch itself failed (for example the directory was removed); no more events will come. */
  readonly onError: (error: Error) => void;
}

export interface FileWatch {
  close(): void;
}

// Kubernetes ConfigMap and Secret volumes publish an update by atomically re-pointing the `..data`
// symlink, so the watched name itself never sees an event; only `..data` does.
const KUBERNETES_ATOMIC_LINK = '..data';

/**
 * Watches the file at `path` for changes, debounced. It watches the parent directory rather than the
 * file: editors and atomic writers replace a file by renaming a new one over it, after which a watch
 * on the old inode stays silent forever. Throws if the directory cannot be watched.
 */
export function watchFile(path: string, options: FileWatchOptions): FileWatch {
  const { debounceMs, timers, onChange, onError } = options;
  const name = basename(path);
  let timer: unknown;
  let pending = false;
  let closed = false;

  const fire = (): void => {
    pending = false;
    if (!closed) onChange();
  };
  const dir = dirname(path);
  const watcher = watch(dir, { persistent: true }, (_event, filename) => {
    // The directory itself removed or renamed away: Linux reports it as an event on its own name and
    // then stays silent forever, even once a new directory takes its place.
    if (!closed && filename === basename(dir) && !existsSync(dir)) {
      closed = true;
      if (pending) timers.clearTimeout(timer);
      watcher.close();
      onError(new Error(`the directory ${dir} was removed`));
      return;
    }
    // Some platforms omit the name; then any event in the directory might be ours.
    const ours = filename === null || filename === name || filename === KUBERNETES_ATOMIC_LINK;
    if (!ours || closed) return;
    // A save is often several events (truncate, write, rename); read once, after the burst.
    if (pending) timers.clearTimeout(timer);
    pending = true;
    timer = timers.setTimeout(fire, debounceMs);
  });
  watcher.on('error', (error) => {
    if (!closed) onError(error);
  });

  return {
    close(): void {
      if (closed) return;
      closed = true;
      if (pending) timers.clearTimeout(timer);
      pending = false;
      watcher.close();
    },
  };
}
