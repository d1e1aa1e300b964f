// A real Prometheus (built by `make monitoring-tools`) for tests: started with a config file, answering
// instant queries, listing its targets and its alerts.

import { join } from 'node:path';
import type { ProcessHandle, ProcessSet } from './processes.js';
import { waitFor } from './wait.js';

const PROMETHEUS = join(import.meta.dirname, '..', '..', '.tools', 'bin', 'prometheus');

export interface Prometheus {
  /** The first sample of an instant query, if any. */
  query(promql: string): Promise<number | undefined>;
  /** Every target with its health and last error, one per line (for a failure's message). */
  targets(): Promise<string>;
  /** The state of every alert of a rule group: alert name → "pending" or "firing" (inactive ones are absent). */
  alerts(): Promise<Record<string, string>>;
  readonly handle: ProcessHandle;
}

export interface PrometheusOptions {
  readonly name: string;
  readonly config: string;
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  /** Runs it under this prefix (`ip netns exec <ns>`), its web address then in that namespace. */
  readonly prefix?: readonly string[];
}

export async function startPrometheus(processes: ProcessSet, options: PrometheusOptions): Promise<Prometheus> {
  const [command, ...prefix] = [...(options.prefix ?? []), PROMETHEUS];
  const handle = await processes.start({
    name: options.name,
    command,
    args: [...prefix, `--config.file=${options.config}`, `--storage.tsdb.path=${options.dataDir}`, `--web.listen-address=${options.host}:${options.port}`],
  });
  const url = `http://${options.host}:${options.port}`;
  await waitFor(`${options.name} ready`, async () => {
    if (handle.exitInfo() !== undefined) throw new Error(`prometheus exited:\n${handle.logTail(30)}`);
    return (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok;
  }, { timeoutMs: 30_000 });
  const api = async <T>(path: string): Promise<T> => ((await (await fetch(`${url}${path}`)).json()) as { data: T }).data;
  return {
    handle,
    async query(promql) {
      const data = await api<{ result?: { value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(promql)}`);
      const value = data.result?.[0]?.value[1];
      return value === undefined ? undefined : Number(value);
    },
    async targets() {
      const data = await api<{ activeTargets?: { scrapeUrl: string; health: string; lastError: string }[] }>('/api/v1/targets');
      return (data.activeTargets ?? []).map((t) => `${t.scrapeUrl} ${t.health} ${t.lastError}`).join('\n');
    },
    async alerts() {
      const data = await api<{ alerts?: { labels: { alertname: string }; state: string }[] }>('/api/v1/alerts');
      return Object.fromEntries((data.alerts ?? []).map((a) => [a.labels.alertname, a.state]));
    },
  };
}
