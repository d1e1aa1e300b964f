// The protocol's Prometheus metrics. Labels are types and roles only, never stream or node ids, so
// their number stays fixed however many proxies connect.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Ledger } from '../cache/ledger.js';
import { ROLES } from './identity.js';

export interface ProtocolMetrics {
  readonly streams: Gauge<'role'>;
  readonly responses: Counter<'type'>;
  readonly acks: Counter<'type'>;
  readonly nacks: Counter<'type'>;
  readonly rejectedRequests: Counter<'reason'>;
  /** Responses held back (a response of the type in flight, or the transport full) and sent later as the newest state. */
  readonly deferred: Counter<'type'>;
  /** Push latency: from a response sent to the proxy's answer (ACK or NACK), by type, role and answer. */
  readonly answerSeconds: Histogram<'type' | 'role' | 'answer'>;
}

export function protocolMetrics(registry: Registry): ProtocolMetrics {
  const registers = [registry];
  return {
    streams: new Gauge({ name: 'xds_streams', help: 'Open ADS streams', labelNames: ['role'], registers }),
    responses: new Counter({ name: 'xds_responses_total', help: 'Discovery responses sent', labelNames: ['type'], registers }),
    acks: new Counter({ name: 'xds_acks_total', help: 'Discovery responses acknowledged', labelNames: ['type'], registers }),
    nacks: new Counter({ name: 'xds_nacks_total', help: 'Discovery responses rejected by a proxy', labelNames: ['type'], registers }),
    rejectedRequests: new Counter({
      name: 'xds_rejected_requests_total',
      help: 'Discovery requests refused or ignored as invalid',
      labelNames: ['reason'],
      registers,
    }),
    deferred: new Counter({
      name: 'xds_responses_deferred_total',
      help: 'Responses held back while the proxy had one of the type unanswered or its stream was full; the newest state went out later',
      labelNames: ['type'],
      registers,
    }),
    answerSeconds: new Histogram({
      name: 'xds_response_answer_seconds',
      help: 'Seconds from a discovery response sent to the proxy\'s ACK or NACK of it (how long a push takes to apply)',
      labelNames: ['type', 'role', 'answer'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
  };
}

/**
 * Connected proxies whose latest response of some type they NACKed, by role, read from the ledger when
 * scraped: what an alert on a proxy stuck on a rejected configuration needs (a counter of NACKs would
 * keep firing after the proxy recovered).
 */
export function ledgerMetrics(registry: Registry, ledger: Ledger): void {
  new Gauge({
    name: 'xds_nacking_proxies',
    help: 'Connected proxies whose latest response of some type they rejected (NACK), by role',
    labelNames: ['role'],
    registers: [registry],
    collect() {
      this.reset();
      for (const role of ROLES) this.set({ role }, 0);
      for (const entry of ledger.all()) {
        if ([...entry.types.values()].some((t) => t.status === 'NACKED')) this.inc({ role: entry.role });
      }
    },
  });
}
