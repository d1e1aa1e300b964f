import type { TunnelNode } from '../model/node.js';

/**
 * Where a list the control plane needs comes from: nodes from the nodes file (no cluster) or the
 * Kubernetes API, Service CIDRs from the Kubernetes API. A source pushes whole lists rather than deltas
 * so the consumer never has to reconcile partial updates.
 */
export interface ListSource<T> {
  /**
   * Starts reading and watching. Resolves once the first good list was delivered to `onItems`;
   * rejects with an error naming the input if that first read fails entirely. Later lists are
   * delivered only when they differ from the last one delivered.
   */
  start(onItems: (items: readonly T[]) => void): Promise<void>;
  /** Stops watching; nothing is delivered once the returned promise resolves. */
  stop(): Promise<void>;
  /**
   * Why the source cannot be trusted to be current (its watch has been failing for too long, its loop
   * died), or undefined while it is healthy. Readiness reports it.
   */
  problem(): string | undefined;
}

export type NodeSource = ListSource<TunnelNode>;

/** The slice of a logger the sources use; a pino logger satisfies it. */
export interface SourceLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
