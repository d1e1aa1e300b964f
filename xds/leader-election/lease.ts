// Leader election on a coordination.k8s.io/v1 Lease, the way Kubernetes' own controllers do it: the
// holder renews the Lease every `retryPeriodMs`; another replica takes it over only once it has seen
// the same record, unrenewed, for `leaseDurationMs` of its own clock (so clock skew between replicas
// does not matter), and every write carries the resourceVersion it read, so two replicas never both
// win. A holder that cannot renew within `renewDeadlineMs` stops leading before anyone else may start.
// Stopping releases the Lease, so the next replica takes over at once instead of waiting it out.
//
// Used for the work one replica must do for the whole fleet: probing tunnels and writing Node
// conditions (and, later, signing certificates).

import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { SourceLogger } from '../sources/source.js';
import { Repeater } from '../sources/repeater.js';
import { describeError, httpStatusOf } from '../sources/kubernetes-watch.js';

export interface LeaseElectionOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** The Lease's name: one per kind of leader work. */
  readonly name: string;
  /** This replica (its pod name): written as the holder. */
  readonly identity: string;
  readonly logger: SourceLogger;
  readonly leaseDurationMs?: number;
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
  readonly now?: () => number;
}

/** client-go's defaults (kube-controller-manager's): 15 s lease, 10 s to renew, a try every 2 s. */
export const DEFAULT_LEASE = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 } as const;

export class LeaseElection {
  private readonly api: CoordinationV1Api;
  private readonly now: () => number;
  private readonly timing: { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number };
  private leading = false;
  /** When this replica last renewed (as leader), for the renew deadline. */
  private lastRenewed = 0;
  /** The last record seen of another holder, and when it was first seen, for expiry by our own clock. */
  private observed: { readonly key: string; readonly at: number } | undefined;
  private readonly repeater: Repeater;
  private readonly listeners: ((leading: boolean) => void)[] = [];

  constructor(private readonly options: LeaseElectionOptions) {
    this.api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.now = options.now ?? Date.now;
    this.timing = {
      leaseDurationMs: options.leaseDurationMs ?? DEFAULT_LEASE.leaseDurationMs,
      renewDeadlineMs: options.renewDeadlineMs ?? DEFAULT_LEASE.renewDeadlineMs,
      retryPeriodMs: options.retryPeriodMs ?? DEFAULT_LEASE.retryPeriodMs,
    };
    if (!(this.timing.retryPeriodMs < this.timing.renewDeadlineMs && this.timing.renewDeadlineMs < this.timing.leaseDurationMs)) {
      throw new Error('leader election needs retry period < renew deadline < lease duration');
    }
    this.repeater = new Repeater(() => this.attempt(), this.timing.retryPeriodMs);
  }

  /** Leading, and renewed within the renew deadline (a hung API call must not keep a stale leader). */
  isLeader(): boolean {
    return this.leading && this.now() - this.lastRenewed <= this.timing.renewDeadlineMs;
  }

  /** `listener` is called on becoming leader (true) and on losing or giving up leadership (false). */
  onLeading(listener: (leading: boolean) => void): void {
    this.listeners.push(listener);
  }

  start(): void {
    this.repeater.start();
  }

  /** Stops trying; a leader stops leading and releases the Lease. */
  async stop(): Promise<void> {
    await this.repeater.stop();
    if (!this.leading) return;
    this.setLeading(false);
    try {
      const lease = await this.read();
      if (lease?.spec?.holderIdentity !== this.options.identity) return;
      await this.api.replaceNamespacedLease({
        name: this.options.name,
        namespace: this.options.namespace,
        body: { ...lease, spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: new V1MicroTime(this.now()) } },
      });
      this.options.logger.info({ lease: this.options.name }, 'leadership released');
    } catch (error) {
      this.options.logger.warn({ lease: this.options.name, error: describeError(error) }, 'releasing the lease failed: the next leader waits for it to expire');
    }
  }

  /** One round: acquire or renew. */
  async attempt(): Promise<void> {
    try {
      const acquired = await this.tryAcquireOrRenew();
      if (acquired) {
        this.lastRenewed = this.now();
        this.setLeading(true);
        return;
      }
      if (this.leading) this.setLeading(false);
    } catch (error) {
      this.options.logger.warn({ lease: this.options.name, error: describeError(error) }, 'leader election: the lease could not be read or written');
      // A leader keeps leading only until its renew deadline: after that another may take over soon.
      if (this.leading && this.now() - this.lastRenewed > this.timing.renewDeadlineMs) this.setLeading(false);
    }
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    this.options.logger.info({ lease: this.options.name, identity: this.options.identity }, leading ? 'became leader' : 'stopped leading');
    for (const listener of this.listeners) listener(leading);
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({ name: this.options.name, namespace: this.options.namespace });
    } catch (error) {
      if (httpStatusOf(error) === 404) return undefined;
      throw error;
    }
  }

  /** True when this replica holds the Lease after the call; a lost race (409) is simply "not leader". */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { name, namespace, identity } = this.options;
    const now = this.now();
    const spec = { holderIdentity: identity, leaseDurationSeconds: Math.ceil(this.timing.leaseDurationMs / 1000), renewTime: new V1MicroTime(now) };
    const lease = await this.read();
    try {
      if (!lease) {
        await this.api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: { ...spec, acquireTime: new V1MicroTime(now), leaseTransitions: 0 } } });
        return true;
      }
      const holder = lease.spec?.holderIdentity;
      if (holder === identity) {
        await this.api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec: { ...lease.spec, ...spec } } });
        return true;
      }
      if (holder && !this.expired(lease, now)) return false;
      await this.api.replaceNamespacedLease({
        name,
        namespace,
        body: { ...lease, spec: { ...lease.spec, ...spec, acquireTime: new V1MicroTime(now), leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1 } },
      });
      this.options.logger.info({ lease: name, from: holder ?? '(released)' }, 'lease taken over');
      return true;
    } catch (error) {
      if (httpStatusOf(error) === 409) return false;
      throw error;
    }
  }

  /** Another holder's lease is expired once its record has not changed for its duration, by our clock. */
  private expired(lease: V1Lease, now: number): boolean {
    const key = `${lease.spec?.holderIdentity ?? ''} ${lease.metadata?.resourceVersion ?? ''}`;
    if (this.observed?.key !== key) this.observed = { key, at: now };
    const durationMs = (lease.spec?.leaseDurationSeconds ?? Math.ceil(this.timing.leaseDurationMs / 1000)) * 1000;
    return now - this.observed.at > durationMs;
  }
}
