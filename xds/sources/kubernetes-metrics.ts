import { Counter, Gauge, type Registry } from 'prom-client';

export type RelistReason = 'initial' | 'gone' | 'error' | 'stale';

/** One watched resource's view of the shared metrics (every series carries `resource`). */
export interface KubernetesSourceMetrics {
  watchEvent(type: string): void;
  relist(reason: RelistReason): void;
  watchUp(open: boolean): void;
}

const EVENT_TYPES = ['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR'] as const;
const RELIST_REASONS: readonly RelistReason[] = ['initial', 'gone', 'error', 'stale'];

interface Shared {
  readonly watchEvents: Counter<'resource' | 'type'>;
  readonly relists: Counter<'resource' | 'reason'>;
  readonly watchUp: Gauge<'resource'>;
  /** Seconds since each resource's last event or list, read when scraped. */
  readonly ages: Map<string, () => number>;
}

const perRegistry = new WeakMap<Registry, Shared>();

function shared(registry: Registry | undefined): Shared {
  const found = registry && perRegistry.get(registry);
  if (found) return found;
  const registers = registry ? [registry] : [];
  const ages = new Map<string, () => number>();
  const metrics: Shared = {
    watchEvents: new Counter({
      name: 'xds_kubernetes_watch_events_total',
      help: 'Watch events received, by resource (nodes, servicecidrs) and event type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR)',
      labelNames: ['resource', 'type'],
      registers,
    }),
    relists: new Counter({
      name: 'xds_kubernetes_relists_total',
      help: 'Full lists, by resource and reason: initial, gone (410 on the watch), error (API errors), stale (nothing heard for too long)',
      labelNames: ['resource', 'reason'],
      registers,
    }),
    watchUp: new Gauge({ name: 'xds_kubernetes_watch_up', help: '1 while the resource\'s watch is open, else 0', labelNames: ['resource'], registers }),
    ages,
  };
  new Gauge({
    name: 'xds_kubernetes_last_event_age_seconds',
    help: 'Seconds since the resource\'s last watch event or successful list',
    labelNames: ['resource'],
    registers,
    collect() {
      for (const [resource, age] of ages) this.set({ resource }, age());
    },
  });
  if (registry) perRegistry.set(registry, metrics);
  return metrics;
}

/**
 * The metrics of one watched resource, registered on `registry` (or on none, so the code paths are the
 * same without one). Several resources share one registry's series, told apart by `resource`.
 */
export function kubernetesSourceMetrics(registry: Registry | undefined, resource: string, lastActivityAgeSeconds: () => number): KubernetesSourceMetrics {
  const { watchEvents, relists, watchUp, ages } = shared(registry);
  ages.set(resource, lastActivityAgeSeconds);
  // Zero series exist from the start, so rates and alerts work before the first occurrence.
  for (const type of EVENT_TYPES) watchEvents.inc({ resource, type }, 0);
  for (const reason of RELIST_REASONS) relists.inc({ resource, reason }, 0);
  watchUp.set({ resource }, 0);
  return {
    watchEvent: (type) => watchEvents.inc({ resource, type: (EVENT_TYPES as readonly string[]).includes(type) ? type : 'other' }),
    relist: (reason) => relists.inc({ resource, reason }),
    watchUp: (open) => watchUp.set({ resource }, open ? 1 : 0),
  };
}
