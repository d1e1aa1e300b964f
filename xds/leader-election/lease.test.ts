import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { LeaseElection } from './lease.js';

interface StoredLease {
  metadata: { name: string; namespace: string; resourceVersion: string };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; renewTime?: string; leaseTransitions?: number };
}

/** The Lease endpoints of an API server, with its optimistic concurrency: a stale resourceVersion gets 409. */
async function leaseApi(): Promise<{ server: Server; kubeConfig: KubeConfig; lease: () => StoredLease | undefined; failing: { on: boolean } }> {
  let stored: StoredLease | undefined;
  let version = 0;
  const failing = { on: false };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (failing.on) return send(500, { kind: 'Status', code: 500 });
      if (req.method === 'GET') return stored ? send(200, stored) : send(404, { kind: 'Status', code: 404, reason: 'NotFound' });
      const body = JSON.parse(Buffer.concat(chunks).toString()) as StoredLease;
      if (req.method === 'POST' && stored) return send(409, { kind: 'Status', code: 409, reason: 'AlreadyExists' });
      if (req.method === 'PUT' && body.metadata.resourceVersion !== stored?.metadata.resourceVersion) return send(409, { kind: 'Status', code: 409, reason: 'Conflict' });
      stored = { ...body, metadata: { ...body.metadata, resourceVersion: String(++version) } };
      assert.match(stored.spec.renewTime ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'MicroTime, as the API server parses it');
      send(req.method === 'POST' ? 201 : 200, stored);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return { server, kubeConfig, lease: () => stored, failing };
}

describe('LeaseElection', () => {
  let api: Awaited<ReturnType<typeof leaseApi>>;
  before(async () => (api = await leaseApi()));
  after(() => api.server.close());

  it('one leader at a time; takeover only after the lease went unrenewed for its duration by the taker\'s clock; release hands over at once', async () => {
    let now = 1_000_000;
    const logger = pino({ level: 'silent' });
    const elector = (identity: string): { election: LeaseElection; events: boolean[] } => {
      const election = new LeaseElection({ kubeConfig: api.kubeConfig, namespace: 'edge-tunnel', name: 'edge-tunnel-xds', identity, logger, now: () => now });
      const events: boolean[] = [];
      election.onLeading((leading) => events.push(leading));
      return { election, events };
    };
    const a = elector('xds-a');
    const b = elector('xds-b');
    await a.election.attempt();
    await b.election.attempt();
    assert.deepEqual([a.election.isLeader(), b.election.isLeader()], [true, false]);
    assert.equal(api.lease()?.spec.holderIdentity, 'xds-a');

    // a renews: b's view of the record changes every time, so it never expires.
    for (let i = 0; i < 10; i++) {
      now += 2_000;
      await a.election.attempt();
      await b.election.attempt();
    }
    assert.deepEqual([a.election.isLeader(), b.election.isLeader()], [true, false]);

    // a stops renewing (hung, partitioned): b waits the lease duration from when it first saw that record.
    now += 14_000;
    await b.election.attempt();
    assert.equal(b.election.isLeader(), false, 'first sight of the record starts b\'s clock');
    now += 15_001;
    await b.election.attempt();
    assert.equal(b.election.isLeader(), true);
    assert.equal(api.lease()?.spec.leaseTransitions, 1);
    // a finds it lost the lease on its next try.
    await a.election.attempt();
    assert.equal(a.election.isLeader(), false);
    assert.deepEqual(a.events, [true, false]);

    // b stops: it releases, and a takes over on its very next try.
    await b.election.stop();
    assert.equal(api.lease()?.spec.holderIdentity, undefined);
    await a.election.attempt();
    assert.equal(a.election.isLeader(), true);
    assert.deepEqual(b.events, [true, false]);
    await a.election.stop();
  });

  it('a leader that cannot renew stops leading after the renew deadline, before anyone may take over', async () => {
    let now = 5_000_000;
    const election = new LeaseElection({ kubeConfig: api.kubeConfig, namespace: 'edge-tunnel', name: 'edge-tunnel-xds', identity: 'xds-c', logger: pino({ level: 'silent' }), now: () => now });
    await election.attempt();
    assert.equal(election.isLeader(), true);
    api.failing.on = true;
    try {
      now += 9_000;
      await election.attempt();
      assert.equal(election.isLeader(), true, 'within the renew deadline');
      now += 1_001;
      await election.attempt();
      assert.equal(election.isLeader(), false, 'past it (10 s < the 15 s others wait)');
    } finally {
      api.failing.on = false;
    }
  });
});
