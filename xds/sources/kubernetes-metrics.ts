import { Counter, Gauge, type Registry } from 'prom-client';

export type RelistReason = 'initial' | 'gone' | 'error' | 'stale';

export interface KubernetesSourceMetrics {
  readonly watchEvents: Counter<'type'>;
  readonly relists: Counter<'reason'>;
  readonly watchUp: Gauge;
}

const EVENT_TYPES = ['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR'] as const;
const RELIST_REASONS: readonly RelistReason[] = ['initial', 'gone', 'error', 'stale'];

/**
 * The source's metrics, registered on `registry` (or on none, so the code paths are the same without
 * one). `lastActivityAgeSeconds` is read when the gauge is scraped.
 */
export function kubernetesSourceMetrics(
  registry: Registry | undefined,
  lastActivityAgeSeconds: () => number,
): KubernetesSourceMetrics {
  const registers = registry ? [registry] : [];
  const watchEvents = new Counter({
    name: 'xds_kubernetes_watch_events_total',
    help: 'Node watch events received, by event type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR)',
    labelNames: ['type'],
    registers,
  });
  const relists = new Counter({
    name: 'xds_kubernetes_relists_total',
    help: 'Full Node lists, by reason: initial, gone (410 on the watch), error (API errors), stale (nothing heard for too long)',
    labelNames: ['reason'],
    registers,
  });
  new Gauge({
    name: 'xds_kubernetes_last_event_age_seconds',
    help: 'Seconds since the last Node watch event or successful list',
    registers,
    collect() {
      this.set(lastActivityAgeSeconds());
    },
  });
  const watchUp = new Gauge({
    name: 'xds_kubernetes_watch_up',
    help: '1 while a Node watch is open, else 0',
    registers,
  });
  // Zero series exist from the start, so rates and alerts work before the first occurrence.
  for (const type of EVENT_TYPES) watchEvents.inc({ type }, 0);
  for (const reason of RELIST_REASONS) relists.inc({ reason }, 0);
  watchUp.set(0);
  return { watchEvents, relists, watchUp };
}
