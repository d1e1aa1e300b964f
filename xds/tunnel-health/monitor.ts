// Keeps each edge node's EdgeTunnelReady status in step with what the cloud Envoys can actually reach:
// every interval, one tunnel health probe per node through every cloud replica (a few at a time), and
// the node's status handed on whenever it is known. Ready when every replica reaches it.

import type { SocketAddress } from '../model/settings.js';
import { Repeater } from '../sources/repeater.js';
import { loadProbeCredentials, type ProbeCredentials, type ProbeResult, type ProbeTls } from './probe.js';

export interface TunnelStatus {
  readonly ready: boolean;
  /** NoTunnel, NotRouted, ProbeFailed, or TunnelsUp. */
  readonly reason: string;
  readonly message: string;
}

export type Probe = (cloud: SocketAddress, credentials: ProbeCredentials | undefined, node: string) => Promise<ProbeResult>;

export interface MonitorOptions {
  readonly clouds: readonly SocketAddress[];
  readonly tls: ProbeTls | undefined;
  readonly intervalMs: number;
  readonly probe: Probe;
  readonly onStatus: (node: string, status: TunnelStatus) => void;
  /** The nodes to probe changed (nodes gone from the configuration are forgotten by the writer). */
  readonly onNodes?: (nodes: readonly string[]) => void;
  /** Probes in flight at once (default 16), so a large fleet is probed steadily, not in a burst. */
  readonly parallel?: number;
  /** Rounds run only while this is true (this replica leads); default always. */
  readonly active?: () => boolean;
}

/** The node's status from one probe per cloud replica. */
export function tunnelStatus(results: readonly ProbeResult[]): TunnelStatus {
  const failed = results.flatMap((r) => (r.ok ? [] : [r]));
  if (failed.length === 0) return { ready: true, reason: 'TunnelsUp', message: `reachable through ${results.length} cloud Envoy(s)` };
  return { ready: false, reason: failed[0].reason, message: failed.map((f) => f.message).join('; ') };
}

export class TunnelHealthMonitor {
  private nodes: readonly string[] = [];
  private readonly repeater: Repeater;

  constructor(private readonly options: MonitorOptions) {
    this.repeater = new Repeater(() => this.round(), options.intervalMs);
  }

  /** The edge nodes to probe (the configuration last published). */
  setNodes(nodes: readonly string[]): void {
    this.nodes = nodes;
    this.options.onNodes?.(nodes);
  }

  start(): void {
    this.repeater.start();
  }

  async stop(): Promise<void> {
    await this.repeater.stop();
  }

  /** One probe of every node through every cloud replica, `parallel` nodes at a time. */
  async round(): Promise<void> {
    if (this.options.active && !this.options.active()) return;
    const queue = [...this.nodes];
    let credentials: ProbeCredentials | undefined;
    try {
      credentials = this.options.tls && loadProbeCredentials(this.options.tls);
    } catch {
      // Files being replaced: this round is skipped (the last statuses stand), the next reads them again.
      return;
    }
    const worker = async (): Promise<void> => {
      const active = (): boolean => !this.repeater.stopped && (this.options.active?.() ?? true);
      for (let node = queue.shift(); node !== undefined && active(); node = queue.shift()) {
        const results = await Promise.all(this.options.clouds.map((cloud) => this.options.probe(cloud, credentials, node)));
        // Leadership may have moved on meanwhile: the new leader's statuses are the ones written.
        if (active()) this.options.onStatus(node, tunnelStatus(results));
      }
    };
    await Promise.all(Array.from({ length: this.options.parallel ?? 16 }, worker));
  }
}
