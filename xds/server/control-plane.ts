// Joins the pieces: node lists from a source go through the translator into the snapshot cache. Only a
// translation without settings errors is published; skipped nodes are reported and the rest served.

import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { formatInputError, type TunnelNode } from '../model/node.js';
import type { Settings } from '../model/settings.js';
import type { SnapshotCache } from '../cache/snapshot-cache.js';
import type { ProxyIdentity } from '../protocol/identity.js';
import type { Admission } from '../translate/admission.js';
import { explainRoute, type RouteExplanation } from '../translate/explain.js';
import { TranslationMemo } from '../translate/memo.js';
import { translate } from '../translate/translate.js';

export interface ControlPlaneMetrics {
  readonly nodes: Gauge<'role'>;
  readonly refusedInput: Gauge;
  readonly lastPublish: Gauge;
}

export function controlPlaneMetrics(registry: Registry): ControlPlaneMetrics {
  const registers = [registry];
  return {
    nodes: new Gauge({ name: 'xds_nodes', help: 'Nodes being served, by role', labelNames: ['role'], registers }),
    refusedInput: new Gauge({
      name: 'xds_refused_node_input',
      help: 'Nodes or node fields left out of the last translation: invalid, or claiming what another node, a Service or a cloud pod owns (see the xDS server log and xds dump)',
      registers,
    }),
    lastPublish: new Gauge({ name: 'xds_last_publish_timestamp_seconds', help: 'When the last configuration was published (Unix time)', registers }),
  };
}

export class ControlPlane {
  private generation = 0;
  private nodes: readonly TunnelNode[] | undefined;
  private serviceCIDRs: readonly string[] = [];
  private refused: readonly string[] = [];
  private admission: Admission | undefined;
  /** What the last translation built per node, reused for nodes that did not change. */
  private readonly memo = new TranslationMemo();

  constructor(
    private readonly cache: SnapshotCache,
    private readonly settings: Settings,
    private readonly logger: Logger,
    private readonly metrics: ControlPlaneMetrics,
  ) {}

  /**
   * Reverse sockets belong to one cloud worker thread: with fewer tunnels per edge than a cloud Envoy
   * has workers, some requests land on a worker without the node's tunnel and get 503.
   */
  checkProxy(identity: ProxyIdentity): void {
    if (identity.role === 'cloud' && identity.concurrency !== undefined && identity.concurrency > this.settings.tunnelsPerCloud) {
      this.logger.warn(
        { proxy: identity.id, concurrency: identity.concurrency, tunnelsPerCloud: this.settings.tunnelsPerCloud },
        'cloud Envoy has more worker threads than tunnels per edge: raise --tunnels-per-cloud to twice its --concurrency, or some requests will get 503',
      );
    }
  }

  /** Translates and publishes; returns false (and publishes nothing) when the input cannot be served. */
  update(nodes: readonly TunnelNode[]): boolean {
    this.nodes = nodes;
    return this.publish(nodes);
  }

  /**
   * The cluster's Service CIDRs changed (ServiceCIDR objects): republishes with the last node list, if
   * one came in yet. Returns false when nothing could be published.
   */
  updateServiceCidrs(cidrs: readonly string[]): boolean {
    this.serviceCIDRs = cidrs;
    this.logger.info({ serviceCIDRs: cidrs }, 'Service CIDRs from the cluster');
    return this.nodes !== undefined && this.publish(this.nodes);
  }

  /** What the last published translation left out of the node input, and why ("edge-b.addresses[1]: …"). */
  refusedInput(): readonly string[] {
    return this.refused;
  }

  /** The edge nodes of the configuration last published. */
  edgeNodes(): string[] {
    return (this.admission?.edgeNodes ?? []).map((node) => node.name);
  }

  /** Where a CONNECT to `target` (HOST:PORT) goes with the configuration last published, or why it is refused. */
  explain(target: string): RouteExplanation {
    if (!this.admission) return { verdict: 'refused', reason: 'nothing published yet' };
    return explainRoute(this.admission, this.settings, target);
  }

  private publish(nodes: readonly TunnelNode[]): boolean {
    const translation = translate(nodes, this.settings, this.serviceCIDRs, this.memo);
    if (!translation.ok) {
      const reasons = translation.errors.map(formatInputError);
      this.logger.error({ reasons }, 'settings are invalid: nothing published, the last good configuration stays in force');
      return false;
    }
    for (const error of translation.errors) this.logger.warn({ path: error.path }, `node input refused: ${formatInputError(error)}`);
    const { changed, listenerErrors } = this.cache.publish(translation);
    for (const err of listenerErrors) this.logger.error({ err }, 'a proxy stream failed to take the new configuration');
    this.generation++;
    const edges = translation.edges.size;
    this.metrics.nodes.set({ role: 'edge' }, edges);
    this.metrics.nodes.set({ role: 'cloud' }, nodes.filter((n) => n.role === 'cloud').length);
    this.metrics.refusedInput.set(translation.errors.length);
    this.metrics.lastPublish.setToCurrentTime();
    this.refused = translation.errors.map(formatInputError);
    this.admission = translation.admission;
    this.logger.info({ generation: this.generation, edges, changedProxies: changed.size }, 'configuration published');
    return true;
  }
}
