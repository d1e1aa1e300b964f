// The Kubernetes sources: list and watch every object of one resource (Nodes; ServiceCIDRs), project
// each onto the few fields edge-tunnel uses, and deliver the whole list, debounced, whenever a
// projection changes.
//
// The list/watch loop is our own, built on the client's `Watch` and its generated list calls, rather than
// the client's informer (`makeInformer`): the informer calls every resourceVersion change an update
// (so each Node heartbeat would be one), stops for good on the first error that is not a 410 unless
// restarted from outside, has no staleness check, and cannot say why it relisted. Here one loop owns
// the state, in the order the API sends events:
//
//   list (paged) ──▶ watch from the list's resourceVersion ──▶ the watch ends:
//     closed by the server, or quiet for 30 s (the client's inactivity timeout) → watch again from the
//       last resourceVersion seen (bookmarks included), no relist
//     410 Gone (HTTP status or ERROR event)                                     → relist ("gone")
//     any other failure (connection, HTTP status, ERROR event)                  → back off, relist ("error")
//     no event and no list for staleAfterMs                                     → relist ("stale")
//
// Backoff doubles from 1 s to 30 s while failures repeat and resets once a watch proves healthy (an
// event arrives, or it stayed open 10 s), so an API server that accepts and drops every watch cannot
// drive a relist storm. A failure is logged when the failure changes, not on every retry.

import { isDeepStrictEqual } from 'node:util';
import { CoreV1Api, NetworkingV1Api, Watch, type ConfigurationOptions, type KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { TunnelNode } from '../model/node.js';
import { backoffMs } from './backoff.js';
import { Debouncer } from './debounce.js';
import { abortableRequest, listAll, type PageFetcher } from './kubernetes-list.js';
import { kubernetesSourceMetrics, type KubernetesSourceMetrics, type RelistReason } from './kubernetes-metrics.js';
import { objectMeta, projectNode, projectServiceCidr, type Projected } from './kubernetes-node.js';
import { describeError, errorEventOutcome, WatchSession, type WatchOutcome } from './kubernetes-watch.js';
import { parseLabelSelector, type LabelSelector } from './label-selector.js';
import type { ListSource, NodeSource, SourceLogger } from './source.js';
import { globalTimers, type TimerFunctions } from './watch-file.js';

/** Marks edge nodes as KubeEdge does; OpenYurt clusters use `openyurt.io/is-edge-worker=true`. */
export const DEFAULT_EDGE_SELECTOR = 'node-role.kubernetes.io/edge';
/** A watch that delivered an event or stayed open this long resets the backoff. */
const HEALTHY_WATCH_MS = 10_000;

export interface KubernetesSourceOptions {
  readonly kubeConfig: KubeConfig;
  readonly logger: SourceLogger;
  /** Quiet time after the last change before the node list is delivered (default 20 ms: a burst of events). */
  readonly debounceMs?: number;
  /** Longest a pending change waits, however busy the watch (default 200 ms). */
  readonly maxDelayMs?: number;
  /**
   * Shortest time between two deliveries (default 100 ms): under a steady stream of changes (a site
   * losing power, a rollout) they go out in batches, each translated once.
   */
  readonly minIntervalMs?: number;
  /** Relist when no event and no list came in for this long (default 5 minutes). */
  readonly staleAfterMs?: number;
  /** Report a problem (not ready) once the list or watch has been failing this long (default 60 s). */
  readonly unhealthyAfterMs?: number;
  /** Defaults to the global setTimeout/clearTimeout; tests inject fakes. */
  readonly timers?: TimerFunctions;
  /** Milliseconds clock for staleness and metrics; defaults to Date.now. Pass the fake timers' clock. */
  readonly now?: () => number;
  /** Registry for the source's metrics; without one they are kept but not exported. */
  readonly registry?: Registry;
  /** Objects per list page (default 500), so a large cluster's list is not one huge response. */
  readonly listPageSize?: number;
}

export interface KubernetesNodeSourceOptions extends KubernetesSourceOptions {
  /** Equality-based label selector for edge nodes; other nodes are `cloud`. */
  readonly edgeSelector?: string;
}

/** What differs between the watched resources. */
export interface WatchedResource<T> {
  /** Lowercase plural for metrics ("nodes"). */
  readonly resource: string;
  /** Plural for logs ("Nodes"). */
  readonly kind: string;
  /** The collection's API path, which the watch requests. */
  readonly path: string;
  readonly listPage: (kubeConfig: KubeConfig, options: ConfigurationOptions) => PageFetcher;
  /** Undefined for an object without a name, which the API never sends. */
  readonly project: (object: unknown) => Projected<T> | undefined;
}

export class KubernetesWatchSource<T> implements ListSource<T> {
  private readonly logger: SourceLogger;
  private readonly staleAfterMs: number;
  private readonly listPageSize: number;
  private readonly timers: TimerFunctions;
  private readonly now: () => number;
  private readonly fetchPage: PageFetcher;
  private readonly watcher: Watch;
  private readonly metrics: KubernetesSourceMetrics;
  private readonly debouncer: Debouncer;
  private readonly abort = new AbortController();
  private readonly requestOptions = abortableRequest(this.abort.signal);

  private onItems: ((items: readonly T[]) => void) | undefined;
  private objects = new Map<string, Projected<T>>();
  private resourceVersion = '';
  private delivered: readonly T[] | undefined;
  private lastActivity = 0;
  private failures = 0;
  /** 410s since the last event; more than one in a row is a failure. */
  private goneInARow = 0;
  /** The failure last logged; cleared (and recovery logged) once a watch proves healthy. */
  private failing: string | undefined;
  /** When the current run of failures began. */
  private failingSince: number | undefined;
  private died: string | undefined;
  private readonly unhealthyAfterMs: number;
  private session: WatchSession | undefined;
  private staleTimer: unknown;
  private wake: (() => void) | undefined;
  private firstDelivery: { resolve: () => void; reject: (error: Error) => void } | undefined;
  private loop: Promise<void> | undefined;
  private started = false;
  private stopped = false;

  /** Throws if the kubeconfig names no cluster. */
  constructor(
    options: KubernetesSourceOptions,
    private readonly watched: WatchedResource<T>,
  ) {
    this.logger = options.logger;
    this.staleAfterMs = options.staleAfterMs ?? 5 * 60_000;
    this.unhealthyAfterMs = options.unhealthyAfterMs ?? 60_000;
    this.listPageSize = options.listPageSize ?? 500;
    this.timers = options.timers ?? globalTimers;
    this.now = options.now ?? Date.now;
    this.fetchPage = watched.listPage(options.kubeConfig, this.requestOptions);
    this.watcher = new Watch(options.kubeConfig);
    this.debouncer = new Debouncer(this.timers, options.debounceMs ?? 20, options.maxDelayMs ?? 200, () => this.flush(), options.minIntervalMs ?? 100);
    this.lastActivity = this.now();
    this.metrics = kubernetesSourceMetrics(options.registry, watched.resource, () => (this.now() - this.lastActivity) / 1000);
  }

  async start(onItems: (items: readonly T[]) => void): Promise<void> {
    if (this.started || this.stopped) throw new Error(`the Kubernetes ${this.watched.kind} source may only be started once, before stop`);
    this.started = true;
    this.onItems = onItems;
    this.lastActivity = this.now();
    const first = new Promise<void>((resolve, reject) => {
      this.firstDelivery = { resolve, reject };
    });
    this.staleTimer = this.timers.setTimeout(() => this.checkStale(), this.staleAfterMs);
    this.loop = this.run().catch((error: unknown) => {
      this.died = describeError(error);
      this.logger.error({ error: describeError(error) }, `the Kubernetes ${this.watched.kind} source failed unexpectedly; its changes no longer apply`);
      this.firstDelivery?.reject(error instanceof Error ? error : new Error(String(error)));
    });
    await first;
  }

  /** Aborts the watch, any list in flight and every timer; nothing is delivered afterwards. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    this.session?.end({ kind: 'stopped' });
    this.wake?.();
    this.debouncer.cancel();
    if (this.staleTimer !== undefined) this.timers.clearTimeout(this.staleTimer);
    this.staleTimer = undefined;
    this.metrics.watchUp(false);
    this.firstDelivery?.reject(new Error(`the Kubernetes ${this.watched.kind} source was stopped before the first list`));
    // Every await in the loop (list, watch, backoff) was just aborted, so this is prompt.
    await this.loop;
  }

  problem(): string | undefined {
    if (this.died !== undefined) return `the ${this.watched.kind} watch loop died: ${this.died}`;
    if (this.failing === undefined || this.failingSince === undefined) return undefined;
    const seconds = (this.now() - this.failingSince) / 1000;
    return seconds * 1000 >= this.unhealthyAfterMs ? `the ${this.watched.kind} list/watch has been failing for ${Math.round(seconds)} s: ${this.failing}` : undefined;
  }

  private async run(): Promise<void> {
    let relist: RelistReason | undefined = 'initial';
    while (!this.stopped) {
      if (this.failures > 0) await this.sleep(backoffMs(this.failures));
      if (this.stopped) return;
      if (relist === undefined && this.now() - this.lastActivity >= this.staleAfterMs) relist = 'stale';
      if (relist !== undefined) {
        this.metrics.relist(relist);
        try {
          await this.list(relist);
        } catch (error) {
          if (this.stopped) return;
          this.failed(`listing ${this.watched.kind}`, error);
          relist = 'error';
          continue;
        }
      }
      const outcome = await this.watchOnce();
      relist = this.afterWatch(outcome);
    }
  }

  /** Decides what follows a watch; returns the reason to relist, if any. */
  private afterWatch(outcome: WatchOutcome): RelistReason | undefined {
    switch (outcome.kind) {
      case 'stopped':
      case 'closed':
        return undefined;
      case 'closedAtOnce':
        // Resuming is still right, but not in a tight loop.
        this.failed(`watching ${this.watched.kind}`, new Error('the API server ended the watch at once'));
        return undefined;
      case 'gone':
        // One 410 is routine (the watch fell behind compaction). Another before any event means even
        // a fresh list's resourceVersion is refused: back off rather than relist in a tight loop.
        if (++this.goneInARow > 1) this.failed(`watching ${this.watched.kind}`, new Error('410 Gone again right after a relist'));
        else this.logger.info({ resourceVersion: this.resourceVersion }, `${this.watched.kind} watch expired (410 Gone); relisting`);
        return 'gone';
      case 'stale':
        return 'stale';
      case 'failed':
        this.failed(`watching ${this.watched.kind}`, outcome.error);
        return 'error';
    }
  }

  private async list(reason: RelistReason): Promise<void> {
    const { items, resourceVersion } = await listAll(this.fetchPage, this.listPageSize);
    if (this.stopped) return;

    const next = new Map<string, Projected<T>>();
    for (const item of items) {
      const projected = this.watched.project(item);
      if (projected !== undefined) next.set(projected.key, projected);
    }
    // Objects missing from the list were deleted while we were not watching.
    const changed = next.size !== this.objects.size || [...next].some(([key, p]) => !isDeepStrictEqual(this.objects.get(key)?.value, p.value));
    this.objects = next;
    this.resourceVersion = resourceVersion;
    this.lastActivity = this.now();
    this.logger.info({ reason, [this.watched.resource]: next.size, resourceVersion, changed }, `listed ${this.watched.kind}`);
    if (this.firstDelivery !== undefined) {
      this.flush();
      this.firstDelivery.resolve();
      this.firstDelivery = undefined;
    } else if (changed) {
      this.changed();
    }
  }

  private watchOnce(): Promise<WatchOutcome> {
    return new Promise((resolve) => {
      const session = new WatchSession(this.now, HEALTHY_WATCH_MS, (open) => this.metrics.watchUp(open), (outcome) => {
        if (this.session === session) this.session = undefined;
        if (session.healthy()) {
          // A watch that worked for a while resets the backoff; only one that also ended well ends
          // the failure state, so a watch that keeps breaking the same way is logged once.
          if (outcome.kind === 'failed') this.failures = 0;
          else this.healthy();
        }
        resolve(outcome);
      });
      this.session = session;
      // The server ends a watch after timeoutSeconds; a spread keeps replicas from reconnecting together.
      const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
      const query = { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds };
      this.watcher
        .watch(this.watched.path, query, (type: string, object: unknown) => this.onEvent(session, type, object), (error: unknown) => session.done(error))
        .then((controller) => session.opened(controller), (error: unknown) => session.end({ kind: 'failed', error }));
    });
  }

  private onEvent(session: WatchSession, type: string, object: unknown): void {
    if (this.stopped || session.ended || this.session !== session) return;
    this.metrics.watchEvent(type);
    if (type === 'ERROR') {
      session.end(errorEventOutcome(object));
      return;
    }
    session.event();
    this.lastActivity = this.now();
    this.healthy();
    const { name, resourceVersion } = objectMeta(object);
    if (resourceVersion !== undefined) this.resourceVersion = resourceVersion;
    if (type === 'ADDED' || type === 'MODIFIED') {
      const projected = this.watched.project(object);
      if (projected === undefined) return;
      const previous = this.objects.get(projected.key);
      // The API sends each object version once and in order; one seen already changes nothing.
      if (previous !== undefined && previous.resourceVersion === projected.resourceVersion) return;
      this.objects.set(projected.key, projected);
      // Heartbeats and other status writes change the resourceVersion but not the projection.
      if (previous === undefined || !isDeepStrictEqual(previous.value, projected.value)) this.changed();
    } else if (type === 'DELETED' && name !== undefined) {
      if (this.objects.delete(name)) this.changed();
    }
  }

  private changed(): void {
    if (!this.stopped && this.firstDelivery === undefined) this.debouncer.poke();
  }

  private flush(): void {
    this.debouncer.cancel();
    if (this.stopped) return;
    const items = [...this.objects.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((p) => p.value);
    if (this.delivered !== undefined && isDeepStrictEqual(items, this.delivered)) return;
    this.delivered = items;
    try {
      this.onItems?.(items);
    } catch (error) {
      this.logger.error({ error: describeError(error) }, `applying the Kubernetes ${this.watched.kind} list failed`);
    }
  }

  private checkStale(): void {
    this.staleTimer = undefined;
    if (this.stopped) return;
    const idle = this.now() - this.lastActivity;
    this.staleTimer = this.timers.setTimeout(() => this.checkStale(), idle < this.staleAfterMs ? this.staleAfterMs - idle : this.staleAfterMs);
    // Between watches the loop checks for itself; here only an open watch that went quiet is ended.
    if (idle >= this.staleAfterMs && this.session?.isOpen) {
      this.logger.info({ idleSeconds: Math.round(idle / 1000) }, `no ${this.watched.kind} event for too long; relisting in case the watch stalled`);
      this.session.end({ kind: 'stale' });
    }
  }

  private failed(what: string, error: unknown): void {
    this.failures++;
    // Keyed by the error alone: the list and the watch failing alike (a refused connection) is one state.
    const reason = describeError(error);
    this.failingSince ??= this.now();
    if (reason === this.failing) return;
    this.failing = reason;
    this.logger.warn(
      { error: reason, failures: this.failures, retryInMs: backoffMs(this.failures) },
      `${what} failed; retrying with backoff (logged again only when the error changes)`,
    );
  }

  private healthy(): void {
    this.failures = 0;
    this.goneInARow = 0;
    this.failingSince = undefined;
    if (this.failing === undefined) return;
    this.logger.info({ previously: this.failing }, `the Kubernetes ${this.watched.kind} watch is healthy again`);
    this.failing = undefined;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const handle = this.timers.setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        this.timers.clearTimeout(handle);
        this.wake = undefined;
        resolve();
      };
    });
  }
}

/** Every Node, as a TunnelNode; nodes matching the edge selector are edges. */
export class KubernetesNodeSource extends KubernetesWatchSource<TunnelNode> implements NodeSource {
  /** Throws if the selector is not supported syntax or the kubeconfig names no cluster. */
  constructor(options: KubernetesNodeSourceOptions) {
    const selector: LabelSelector = parseLabelSelector(options.edgeSelector ?? DEFAULT_EDGE_SELECTOR);
    super(options, {
      resource: 'nodes',
      kind: 'Nodes',
      path: '/api/v1/nodes',
      listPage: (kubeConfig, request) => {
        const api = kubeConfig.makeApiClient(CoreV1Api);
        return (query) => api.listNode(query, request);
      },
      project: (object) => projectNode(object, selector),
    });
  }
}

/**
 * The cluster's Service ClusterIP ranges (ServiceCIDR objects, networking.k8s.io/v1), delivered as one
 * list of CIDRs per ServiceCIDR object.
 */
export class KubernetesServiceCidrSource extends KubernetesWatchSource<readonly string[]> {
  constructor(options: KubernetesSourceOptions) {
    super(options, {
      resource: 'servicecidrs',
      kind: 'ServiceCIDRs',
      path: '/apis/networking.k8s.io/v1/servicecidrs',
      listPage: (kubeConfig, request) => {
        const api = kubeConfig.makeApiClient(NetworkingV1Api);
        return (query) => api.listServiceCIDR(query, request);
      },
      project: projectServiceCidr,
    });
  }
}
