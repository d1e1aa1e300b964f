// Writes each edge Node's EdgeTunnelReady condition (status, reason, message, transition time), so that
// `kubectl get nodes` / `kubectl describe node` show which edge nodes the cloud can reach. A condition
// is written only when it changes (or was never written by this process), at most `perSecond` writes a
// second: a fleet flapping at once cannot flood the API server.

import { CoreV1Api, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { SourceLogger } from '../sources/source.js';
import { describeError } from '../sources/kubernetes-watch.js';
import type { TunnelStatus } from './monitor.js';

export const CONDITION_TYPE = 'EdgeTunnelReady';
/** An unchanged condition is written again this often, so its heartbeat time says the prober is alive. */
const HEARTBEAT_MS = 5 * 60_000;

export class NodeConditionWriter {
  private readonly api: CoreV1Api;
  /** What was last written for each node, and when (rewritten after HEARTBEAT_MS even if unchanged). */
  private readonly written = new Map<string, { status: TunnelStatus; at: number }>();
  private readonly pending = new Map<string, TunnelStatus>();
  private draining: Promise<void> | undefined;

  constructor(
    kubeConfig: KubeConfig,
    private readonly logger: SourceLogger,
    private readonly perSecond = 20,
  ) {
    this.api = kubeConfig.makeApiClient(CoreV1Api);
  }

  set(node: string, status: TunnelStatus): void {
    const last = this.written.get(node);
    const fresh = last !== undefined && Date.now() - last.at < HEARTBEAT_MS;
    if (last && fresh && last.status.ready === status.ready && last.status.reason === status.reason) return;
    this.pending.set(node, status);
    this.draining ??= this.drain().finally(() => (this.draining = undefined));
  }

  /** Forgets nodes that left the configuration, so a Node re-created under the same name is written again. */
  retain(nodes: readonly string[]): void {
    const keep = new Set(nodes);
    for (const node of this.written.keys()) if (!keep.has(node)) this.written.delete(node);
  }

  /** Forgets everything written and drops what waits (leadership lost: the new leader writes). */
  reset(): void {
    this.written.clear();
    this.pending.clear();
  }

  /** Resolves once nothing is waiting to be written. */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private async drain(): Promise<void> {
    for (const [node, status] of this.pending) {
      this.pending.delete(node);
      const now = new Date().toISOString();
      const condition = { type: CONDITION_TYPE, status: status.ready ? 'True' : 'False', reason: status.reason, message: status.message, lastHeartbeatTime: now, lastTransitionTime: now };
      try {
        await this.api.patchNodeStatus({ name: node, body: { status: { conditions: [condition] } } }, setHeaderOptions('Content-Type', 'application/strategic-merge-patch+json'));
        this.written.set(node, { status, at: Date.now() });
        this.logger.info({ node, ready: status.ready, reason: status.reason }, `${CONDITION_TYPE} updated`);
      } catch (error) {
        // Tried again on the next probe round (the status is not recorded as written).
        this.logger.warn({ node, error: describeError(error) }, `writing ${CONDITION_TYPE} failed`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000 / this.perSecond));
    }
  }
}
