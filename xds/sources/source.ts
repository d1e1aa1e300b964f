import type { TunnelNode } from '../model/node.js';

/**
 * Where the control plane's node list comes from: the nodes file (no cluster) or, later, the
 * Kubernetes API. A source pushes whole lists rather than deltas so the consumer never has to
 * reconcile partial updates.
 */
export interface NodeSource {
  /**
   * Starts reading and watching. Resolves once the first good node list was delivered to `onNodes`;
   * rejects with an error naming the input if that first read fails entirely. Later lists are
   * delivered only when they differ from the last one delivered.
   */
  start(onNodes: (nodes: readonly TunnelNode[]) => void): Promise<void>;
  /** Stops watching; nothing is delivered once the returned promise resolves. */
  stop(): Promise<void>;
}

/** The slice of a logger the sources use; a pino logger satisfies it. */
export interface SourceLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
