import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TypeLedger } from '../cache/ledger.js';
import { fleetStatus, type ProxyStatus, type ReplicaStatus } from './status.js';

const NOW = new Date('2026-12-01T12:00:00Z');
const acked: TypeLedger = { status: 'ACKED', subscribed: [], sentVersion: 'v2', ackedVersion: 'v2', sentAt: '2026-12-01T11:59:00Z' };

function proxy(role: string, name: string, types: Record<string, TypeLedger>, replica = 'xds-0'): ProxyStatus {
  return { replica, stream: 1, role, proxy: name, envoyVersion: '1.40.0', connectedAt: '2026-12-01T11:00:00Z', types };
}

describe('xds status', () => {
  it('is clean when every served edge has a proxy and every type is ACKed, whichever replica it is on', () => {
    const replicas: ReplicaStatus[] = [
      { replica: 'xds-0', servedEdges: ['edge-a', 'edge-b'], proxies: [proxy('cloud', 'cloud-0', { Cluster: acked }), proxy('edge', 'edge-a', { Cluster: acked })] },
      { replica: 'xds-1', servedEdges: ['edge-a', 'edge-b'], proxies: [proxy('edge', 'edge-b', { Cluster: acked }, 'xds-1')] },
    ];
    const status = fleetStatus(replicas, NOW);
    assert.deepEqual(status.problems, []);
    assert.deepEqual(status.proxies.map((p) => `${p.role}/${p.proxy}@${p.replica}:${p.health}`), ['cloud/cloud-0@xds-0:ok', 'edge/edge-a@xds-0:ok', 'edge/edge-b@xds-1:ok']);
  });

  it('flags a NACK with its error, a response unanswered for too long, and an edge without a proxy', () => {
    const nacked: TypeLedger = { status: 'NACKED', subscribed: [], sentVersion: 'v3', ackedVersion: 'v2', nack: { version: 'v3', nonce: '4', detail: 'bad route', at: '2026-12-01T11:59:59Z' } };
    const waiting: TypeLedger = { status: 'REQUESTED', subscribed: [], sentVersion: 'v3', sentAt: '2026-12-01T11:59:00Z' };
    const fresh: TypeLedger = { status: 'REQUESTED', subscribed: [], sentVersion: 'v3', sentAt: '2026-12-01T11:59:58Z' };
    const status = fleetStatus([{ replica: 'xds-0', servedEdges: ['edge-a', 'edge-b'], proxies: [proxy('cloud', 'cloud-0', { RouteConfiguration: nacked }), proxy('edge', 'edge-a', { Cluster: waiting, Listener: fresh })] }], NOW);
    assert.deepEqual(status.proxies.map((p) => p.health), ['nacked', 'stale']);
    assert.deepEqual(status.problems.map((p) => [p.kind, p.where]), [
      ['nacked', 'cloud cloud-0 via xds-0'],
      ['stale', 'edge edge-a via xds-0'],
      ['missing', 'edge-b'],
    ]);
    assert.match(status.problems[0].detail, /RouteConfiguration version v3 NACKed at .*: bad route/);
  });
});
