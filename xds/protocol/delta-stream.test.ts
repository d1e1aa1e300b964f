import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse } from '../../envoy/generated/envoy/service/discovery/v3/discovery.js';
import { XdsType, type XdsTypeUrl } from '../../envoy/xds-types.js';
import { Ledger } from '../cache/ledger.js';
import { SnapshotCache, edgeKey } from '../cache/snapshot-cache.js';
import { DeltaStream } from './delta-stream.js';
import { protocolMetrics } from './metrics.js';
import type { StreamDeps } from './stream-base.js';
import { FIXED_NOW, FakeIo, fleet, metricValue, node } from './testing.js';


const edgeA = node('edge', 'node-a');
const A = edgeKey('node-a');

function setup(): { stream: DeltaStream; io: FakeIo<DeltaDiscoveryResponse>; cache: SnapshotCache; deps: StreamDeps } {
  const cache = new SnapshotCache();
  cache.publish(fleet());
  const deps: StreamDeps = { watcher: cache, ledger: new Ledger(), logger: pino({ level: 'silent' }), metrics: protocolMetrics(new Registry()), now: () => FIXED_NOW };
  const io = new FakeIo<DeltaDiscoveryResponse>();
  return { stream: new DeltaStream(1, deps, io), io, cache, deps };
}

function delta(typeUrl: string, options: { subscribe?: string[]; unsubscribe?: string[]; nonce?: string; error?: string; initial?: Record<string, string>; first?: boolean } = {}): DeltaDiscoveryRequest {
  return {
    node: options.first === false ? undefined : edgeA,
    typeUrl,
    resourceNamesSubscribe: options.subscribe ?? [],
    resourceNamesUnsubscribe: options.unsubscribe ?? [],
    resourceLocatorsSubscribe: [],
    resourceLocatorsUnsubscribe: [],
    initialResourceVersions: options.initial ?? {},
    responseNonce: options.nonce ?? '',
    errorDetail: options.error === undefined ? undefined : { code: 3, message: options.error, details: [] },
  };
}

const ack = (response: DeltaDiscoveryResponse): DeltaDiscoveryRequest => delta(response.typeUrl, { nonce: response.nonce, first: false });
const names = (response: DeltaDiscoveryResponse): string[] => response.resources.map((r) => r.name);

describe('delta stream: what is sent', () => {
  it('a wildcard subscription gets everything, then only what changed, and removals by name', () => {
    const { stream, io, cache } = setup();
    stream.handle(delta(XdsType.cluster));
    const first = io.takeOne();
    assert.deepEqual(names(first), ['cloud', 'local-10250']);
    stream.handle(ack(first));
    cache.publish(fleet({ aCluster: 'v2' }));
    const change = io.takeOne();
    assert.deepEqual(names(change), ['local-10250']);
    assert.deepEqual(change.removedResources, []);
    stream.handle(ack(change));
    cache.publish(fleet({ aCluster: 'v2', bCluster: 'x' }));
    assert.deepEqual(io.sent, [], "node-b's change is not node-a's");
  });

  it('named subscriptions: only those names; a new name alone; a missing name said once; unsubscribing sends nothing', () => {
    const { stream, io } = setup();
    stream.handle(delta(XdsType.route, { subscribe: ['local-routes'] }));
    const first = io.takeOne();
    assert.deepEqual(names(first), ['local-routes']);
    stream.handle(ack(first));
    stream.handle(delta(XdsType.route, { subscribe: ['extra-routes', 'nowhere'], first: false }));
    const more = io.takeOne();
    assert.deepEqual(names(more), ['extra-routes']);
    assert.deepEqual(more.removedResources, ['nowhere']);
    stream.handle(ack(more));
    stream.handle(delta(XdsType.route, { unsubscribe: ['extra-routes'], first: false }));
    assert.deepEqual(io.sent, []);
  });

  it('a reconnect with initial_resource_versions gets only what differs, and what it holds that is gone', () => {
    const { stream, io, cache } = setup();
    const current = cache.current(A, XdsType.cluster);
    const cloud = current.resources.get('cloud')?.version ?? '';
    stream.handle(delta(XdsType.cluster, { initial: { cloud, 'local-10250': 'old', 'gone-cluster': 'v1' } }));
    const response = io.takeOne();
    assert.deepEqual(names(response), ['local-10250']);
    assert.deepEqual(response.removedResources, ['gone-cluster']);
  });

  it('the first request is answered even when the proxy holds everything already', () => {
    const { stream, io, cache } = setup();
    const initial = Object.fromEntries([...cache.current(A, XdsType.cluster).resources.values()].map((r) => [r.name, r.version]));
    stream.handle(delta(XdsType.cluster, { initial }));
    const response = io.takeOne();
    assert.deepEqual([response.resources.length, response.removedResources.length], [0, 0]);
  });
});

describe('delta stream: ACK, NACK and flow control', () => {
  it('a NACKed version is not sent again; the next change is', async () => {
    const { stream, io, cache, deps } = setup();
    stream.handle(delta(XdsType.cluster));
    stream.handle(ack(io.takeOne()));
    cache.publish(fleet({ aCluster: 'bad' }));
    const bad = io.takeOne();
    stream.handle({ ...ack(bad), errorDetail: { code: 3, message: 'cluster local-10250: bad config', details: [] } });
    assert.deepEqual(io.sent, [], 'the rejected version is parked');
    assert.equal(deps.ledger.forKey(A)[0].types.get(XdsType.cluster)?.status, 'NACKED');
    assert.equal(await metricValue(deps.metrics.nacks, { type: 'Cluster' }), 1);
    cache.publish(fleet({ aCluster: 'good' }));
    assert.deepEqual(names(io.takeOne()), ['local-10250']);
  });

  it('holds changes while a response is unanswered, then sends the newest; nothing while the transport is full', async () => {
    const { stream, io, cache, deps } = setup();
    stream.handle(delta(XdsType.cluster));
    const first = io.takeOne();
    cache.publish(fleet({ aCluster: 'v2' }));
    cache.publish(fleet({ aCluster: 'v3' }));
    assert.deepEqual(io.sent, []);
    assert.equal(await metricValue(deps.metrics.deferred, { type: 'Cluster' }), 1);
    stream.handle(ack(first));
    const newest = io.takeOne();
    assert.equal(newest.resources[0].version, cache.current(A, XdsType.cluster).resources.get('local-10250')?.version);
    io.writable = false;
    stream.handle(ack(newest));
    cache.publish(fleet({ aCluster: 'v4' }));
    const full = io.takeOne();
    stream.handle(ack(full));
    cache.publish(fleet({ aCluster: 'v5' }));
    assert.deepEqual(io.sent, [], 'the transport is full');
    io.writable = true;
    stream.drained();
    assert.equal(io.takeOne().resources[0].version, cache.current(A, XdsType.cluster).resources.get('local-10250')?.version);
  });

  it('a stale nonce is not an ACK, but its subscription change counts', () => {
    const { stream, io } = setup();
    stream.handle(delta(XdsType.route, { subscribe: ['local-routes'] }));
    const first = io.takeOne();
    stream.handle(delta(XdsType.route, { nonce: 'stale', subscribe: ['extra-routes'], first: false }));
    assert.deepEqual(io.sent, [], 'the first response is still unanswered');
    stream.handle(ack(first));
    assert.deepEqual(names(io.takeOne()), ['extra-routes']);
  });
});

describe('delta stream under arbitrary input (property test)', () => {
  type Step =
    | { kind: 'publish'; tags: { aCluster?: string; aRoute?: string; aExtraRoute?: string } }
    | { kind: 'subscribe' | 'unsubscribe'; type: XdsTypeUrl; name: string }
    | { kind: 'answer'; nack: boolean; stale: boolean };
  const type = fc.constantFrom(XdsType.cluster, XdsType.route);
  const step: fc.Arbitrary<Step> = fc.oneof(
    fc.record({ kind: fc.constant('publish' as const), tags: fc.record({ aCluster: fc.constantFrom('1', '2'), aRoute: fc.constantFrom('1', '2'), aExtraRoute: fc.constantFrom('1', '2') }, { requiredKeys: [] }) }),
    fc.record({ kind: fc.constantFrom('subscribe' as const, 'unsubscribe' as const), type, name: fc.constantFrom('*', 'cloud', 'local-10250', 'local-routes', 'extra-routes', 'nowhere') }),
    fc.record({ kind: fc.constant('answer' as const), nack: fc.boolean(), stale: fc.boolean() }),
  );

  it('never throws, and a client that ACKs everything ends up holding what it subscribed to (but versions it refused)', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 30 }), (steps) => {
        const { stream, io, cache } = setup();
        // The client: what it holds per type, applied from every response it accepts.
        const held = new Map<string, Map<string, string>>([[XdsType.cluster, new Map()], [XdsType.route, new Map()]]);
        const subscribed = new Map<string, Set<string>>([[XdsType.cluster, new Set()], [XdsType.route, new Set()]]);
        const pending: DeltaDiscoveryResponse[] = [];
        // Versions the client NACKed: the server rightly never sends them again (they are parked).
        const refused = new Map<string, string>();
        const apply = (r: DeltaDiscoveryResponse): void => {
          const view = held.get(r.typeUrl) ?? new Map<string, string>();
          for (const res of r.resources) view.set(res.name, res.version);
          for (const name of r.removedResources) view.delete(name);
        };
        const drain = (nack: boolean, stale: boolean): void => {
          pending.push(...io.take());
          const response = pending.shift();
          if (!response) return;
          if (!nack) apply(response);
          for (const res of response.resources) {
            if (nack) refused.set(`${response.typeUrl} ${res.name}`, res.version);
            else refused.delete(`${response.typeUrl} ${res.name}`);
          }
          stream.handle(delta(response.typeUrl, { nonce: stale ? 'stale' : response.nonce, error: nack ? 'refused' : undefined, first: false }));
          if (stale) pending.unshift(response);
        };
        for (const t of [XdsType.cluster, XdsType.route]) stream.handle(delta(t, { subscribe: ['nowhere'] }));
        for (const s of steps) {
          if (s.kind === 'publish') cache.publish(fleet(s.tags));
          else if (s.kind === 'answer') drain(s.nack, s.stale);
          else {
            const set = subscribed.get(s.type) ?? new Set<string>();
            if (s.kind === 'subscribe') set.add(s.name);
            else {
              set.delete(s.name);
              if (s.name !== '*' && !set.has('*')) held.get(s.type)?.delete(s.name);
            }
            stream.handle(delta(s.type, { [s.kind]: [s.name], first: false }));
          }
        }
        // Settle: the client ACKs everything until nothing more comes.
        for (let i = 0; i < 20; i++) drain(false, false);
        assert.deepEqual(io.failures, []);
        for (const t of [XdsType.cluster, XdsType.route]) {
          const set = subscribed.get(t) ?? new Set<string>();
          const snapshot = cache.current(A, t);
          const parked = (name: string): boolean => refused.get(`${t} ${name}`) === snapshot.resources.get(name)?.version;
          const expected = new Map([...snapshot.resources.values()].filter((r) => (set.has('*') || set.has(r.name)) && !parked(r.name)).map((r) => [r.name, r.version]));
          const view = new Map([...(held.get(t) ?? new Map<string, string>())].filter(([name]) => (set.has('*') || set.has(name)) && !parked(name)));
          assert.deepEqual(view, expected, `${t}: the client holds what it subscribed to`);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
