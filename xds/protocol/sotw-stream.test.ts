// The SotW ADS stream without gRPC, in the style of go-control-plane's server_test.go: a fake stream
// records what the server sends, a real SnapshotCache supplies the resources, and each test plays the
// proxy's side of the conversation request by request.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { XdsType } from '../../envoy/xds-types.js';
import { CLOUD_KEY, edgeKey } from '../cache/snapshot-cache.js';
import { MAX_RESOURCE_NAMES } from './stream-base.js';
import {
  FIXED_NOW,
  ack,
  harness,
  metricValue,
  nack,
  namesIn,
  node,
  request,
  resourceSet,
  translation,
  fleet,
  type Tags,
} from './testing.js';

const A = edgeKey('node-a');
const edgeA = node('edge', 'node-a');
const cloud1 = node('cloud', 'cloud-1');

/** A harness with the fleet published and one edge stream for node-a opened (no request yet). */
function setup(tags: Tags = {}) {
  const h = harness(fleet(tags));
  return { ...h, ...h.open() };
}

describe('SotW stream: identity', () => {
  it('fails a stream whose first request has no node, naming node.id, and sends nothing', async () => {
    const { stream, io, ledger, metrics } = setup();
    stream.handle(request(XdsType.cluster));
    assert.equal(io.failures.length, 1);
    assert.match(io.failures[0], /node\.id/);
    assert.deepEqual(io.sent, []);
    assert.deepEqual(ledger.all(), []);
    assert.equal(await metricValue(metrics.rejectedRequests, { reason: 'identity' }), 1);
    // The stream is over: a later request, even a good one, is not answered.
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    assert.deepEqual(io.sent, []);
    assert.equal(io.failures.length, 1);
  });

  it('fails a stream whose node has an empty id', () => {
    const { stream, io } = setup();
    stream.handle(request(XdsType.cluster, { node: node('edge', '') }));
    assert.equal(io.failures.length, 1);
    assert.match(io.failures[0], /node\.id/);
    assert.deepEqual(io.sent, []);
  });

  it('fails a stream whose node.cluster is neither cloud nor edge', async () => {
    const { stream, io, ledger, metrics } = setup();
    stream.handle(request(XdsType.cluster, { node: node('edge-nodes', 'node-a') }));
    assert.equal(io.failures.length, 1);
    assert.match(io.failures[0], /node\.cluster/);
    assert.match(io.failures[0], /"edge-nodes"/);
    assert.deepEqual(io.sent, []);
    assert.deepEqual(ledger.all(), []);
    assert.equal(await metricValue(metrics.streams, { role: 'edge' }), 0);
  });

  it('opens a ledger entry and counts the stream by role', async () => {
    const { stream, io, id, ledger, metrics } = setup();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    assert.deepEqual(io.failures, []);
    const [entry] = ledger.forKey(A);
    assert.equal(entry.streamId, id);
    assert.equal(entry.proxyId, 'node-a');
    assert.equal(entry.connectedAt, FIXED_NOW.toISOString());
    assert.equal(await metricValue(metrics.streams, { role: 'edge' }), 1);
  });
});

describe('SotW stream: what is sent', () => {
  it('gives an edge proxy its own key’s resources only', () => {
    const { stream, io, cache } = setup();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    const response = io.takeOne();
    assert.equal(response.typeUrl, XdsType.cluster);
    assert.deepEqual(namesIn(response), ['cloud', 'local-10250']);
    assert.equal(response.versionInfo, cache.current(A, XdsType.cluster).version);
    assert.notEqual(response.nonce, '');
  });

  it('gives a cloud proxy the cloud resources', () => {
    const { stream, io, cache } = setup();
    stream.handle(request(XdsType.listener, { node: cloud1 }));
    const response = io.takeOne();
    assert.deepEqual(namesIn(response), ['connect', 'handshake']);
    assert.equal(response.versionInfo, cache.current(CLOUD_KEY, XdsType.listener).version);
  });

  it('answers LDS and CDS without names with every resource, and RDS with "*" too', () => {
    const { stream, io } = setup();
    stream.handle(request(XdsType.listener, { node: edgeA }));
    assert.deepEqual(namesIn(io.takeOne()), ['tunnel']);
    stream.handle(request(XdsType.cluster));
    assert.deepEqual(namesIn(io.takeOne()), ['cloud', 'local-10250']);
    stream.handle(request(XdsType.route, { names: ['*'] }));
    assert.deepEqual(namesIn(io.takeOne()), ['extra-routes', 'local-routes']);
  });

  it('answers RDS with the named routes only, skipping names it does not have', () => {
    const { stream, io } = setup();
    stream.handle(request(XdsType.route, { node: edgeA, names: ['local-routes', 'no-such-routes'] }));
    const response = io.takeOne();
    assert.deepEqual(namesIn(response), ['local-routes']);
  });

  it('resends RDS when a request changes the names, and not when they stay the same', () => {
    const { stream, io } = setup();
    stream.handle(request(XdsType.route, { node: edgeA, names: ['local-routes'] }));
    const first = io.takeOne();
    stream.handle(ack(first, ['local-routes']));
    assert.deepEqual(io.sent, []);
    stream.handle(ack(first, ['local-routes', 'extra-routes']));
    const second = io.takeOne();
    assert.deepEqual(namesIn(second), ['extra-routes', 'local-routes']);
    assert.notEqual(second.versionInfo, first.versionInfo);
    assert.notEqual(second.nonce, first.nonce);
    stream.handle(ack(second, ['extra-routes', 'local-routes'])); // same set, other order
    assert.deepEqual(io.sent, []);
    stream.handle(ack(second, ['extra-routes']));
    assert.deepEqual(namesIn(io.takeOne()), ['extra-routes']);
  });

  it('gives every response its own nonce', () => {
    const { stream, io } = setup();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    stream.handle(request(XdsType.listener));
    stream.handle(request(XdsType.route, { names: ['local-routes'] }));
    const nonces = io.take().map((r) => r.nonce);
    assert.equal(new Set(nonces).size, 3);
  });
});

describe('SotW stream: ACK, NACK and stale nonces', () => {
  it('records an ACK and sends nothing', async () => {
    const { stream, io, ledger, metrics } = setup();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    const response = io.takeOne();
    assert.equal(ledger.forKey(A)[0].types.get(XdsType.cluster)?.status, 'REQUESTED');
    stream.handle(ack(response));
    assert.deepEqual(io.sent, []);
    const typeLedger = ledger.forKey(A)[0].types.get(XdsType.cluster);
    assert.equal(typeLedger?.status, 'ACKED');
    assert.equal(typeLedger?.ackedVersion, response.versionInfo);
    assert.equal(typeLedger?.sentVersion, response.versionInfo);
    assert.equal(await metricValue(metrics.acks, { type: 'Cluster' }), 1);
    // The push latency: the answer came at the fixed clock's same instant as the response.
    const { values } = await metrics.answerSeconds.get();
    const answered = values.find((v) => v.metricName === 'xds_response_answer_seconds_count' && v.labels.type === 'Cluster' && v.labels.role === 'edge' && v.labels.answer === 'ACK');
    assert.equal(answered?.value, 1);
  });

  it('ignores a reply to an older response: nothing sent, ledger unchanged', async () => {
    const { stream, io, ledger, cache, metrics } = setup();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    const first = io.takeOne();
    stream.handle(ack(first));
    cache.publish(fleet({ aCluster: 'v2' }));
    const second = io.takeOne();
    const before = structuredClone(ledger.forKey(A)[0].types.get(XdsType.cluster));

    // A duplicate of the first ACK and a late complaint about the first response.
    stream.handle(ack(first));
    stream.handle(nack(first, 'late complaint about the first response'));
    assert.deepEqual(io.sent, []);
    assert.deepEqual(ledger.forKey(A)[0].types.get(XdsType.cluster), before);
    assert.equal(before?.sentNonce, second.nonce);
    assert.equal(before?.status, 'REQUESTED');
    assert.equal(await metricValue(metrics.acks, { type: 'Cluster' }), 1);
    assert.equal(await metricValue(metrics.nacks, { type: 'Cluster' }), 0);

    stream.handle(ack(second));
    assert.equal(ledger.forKey(A)[0].types.get(XdsType.cluster)?.status, 'ACKED');
  });

  it('records a NACK with its detail and does not resend the rejected version', async () => {
    const { stream, io, ledger, metrics } = setup();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    const response = io.takeOne();
    stream.handle(nack(response, 'cluster local-10250: bad config'));
    assert.deepEqual(io.sent, []);
    const typeLedger = ledger.forKey(A)[0].types.get(XdsType.cluster);
    assert.equal(typeLedger?.status, 'NACKED');
    assert.deepEqual(typeLedger?.nack, {
      version: response.versionInfo,
      nonce: response.nonce,
      detail: 'cluster local-10250: bad config',
      at: FIXED_NOW.toISOString(),
    });
    assert.equal(await metricValue(metrics.nacks, { type: 'Cluster' }), 1);
  });

  it('keeps a NACKed version parked when another type changes', () => {
    const { stream, io, cache, ledger } = setup();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    const clusters = io.takeOne();
    stream.handle(request(XdsType.listener));
    const listeners = io.takeOne();
    stream.handle(ack(listeners));
    stream.handle(nack(clusters, 'rejected'));
    assert.deepEqual(io.sent, []);

    cache.publish(fleet({ aListener: 'v2' }));
    const pushed = io.take();
    assert.deepEqual(pushed.map((r) => r.typeUrl), [XdsType.listener]);
    stream.handle(ack(pushed[0]));
    assert.deepEqual(io.sent, []);
    assert.equal(ledger.forKey(A)[0].types.get(XdsType.cluster)?.status, 'NACKED');

    // A change elsewhere in the fleet (node-b) touches no type of node-a's.
    cache.publish(fleet({ aListener: 'v2', bCluster: 'v2' }));
    assert.deepEqual(io.sent, []);
  });

  it('keeps a NACKed RDS selection parked when only an unsubscribed route of the type changes', () => {
    const { stream, io, cache } = setup();
    stream.handle(request(XdsType.route, { node: edgeA, names: ['local-routes'] }));
    stream.handle(nack(io.takeOne(), 'rejected', ['local-routes']));
    cache.publish(fleet({ aExtraRoute: 'v2' }));
    assert.deepEqual(io.sent, []);
  });

  it('sends the type again once its content changes after a NACK, and takes its ACK', () => {
    const { stream, io, cache, ledger } = setup();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    const rejected = io.takeOne();
    stream.handle(nack(rejected, 'rejected'));
    cache.publish(fleet({ aCluster: 'fixed' }));
    const fixed = io.takeOne();
    assert.equal(fixed.typeUrl, XdsType.cluster);
    assert.notEqual(fixed.versionInfo, rejected.versionInfo);
    assert.equal(ledger.forKey(A)[0].types.get(XdsType.cluster)?.status, 'REQUESTED');
    stream.handle(ack(fixed));
    assert.equal(ledger.forKey(A)[0].types.get(XdsType.cluster)?.status, 'ACKED');
  });

  it('answers a NACK that also changes the RDS names with the new selection', () => {
    const { stream, io } = setup();
    stream.handle(request(XdsType.route, { node: edgeA, names: ['local-routes'] }));
    stream.handle(nack(io.takeOne(), 'rejected', ['extra-routes']));
    assert.deepEqual(namesIn(io.takeOne()), ['extra-routes']);
  });

  // A NACKed version is parked only until something else is sent: content that returns later is sent.
  it('sends content again that was NACKed once, after a different version was accepted', () => {
    const { stream, io, cache } = setup({ aCluster: 'v1' });
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    const v1 = io.takeOne();
    stream.handle(nack(v1, 'rejected'));
    cache.publish(fleet({ aCluster: 'v2' }));
    stream.handle(ack(io.takeOne()));
    cache.publish(fleet({ aCluster: 'v1' }));
    const again = io.take();
    assert.equal(again.length, 1, 'the cache holds v1 again while the proxy holds v2: v1 must be sent');
    assert.equal(again[0].versionInfo, v1.versionInfo);
  });
});

describe('SotW stream: pushes on cache changes', () => {
  it('pushes only the types the proxy subscribed to', () => {
    const { stream, io, cache } = setup();
    stream.handle(request(XdsType.listener, { node: edgeA }));
    stream.handle(ack(io.takeOne()));
    cache.publish(fleet({ aCluster: 'v2', aRoute: 'v2', aSecret: 'v2', aListener: 'v2' }));
    assert.deepEqual(io.take().map((r) => r.typeUrl), [XdsType.listener]);
  });

  it('pushes changed types in ADS order whatever order they were subscribed in', () => {
    const { stream, io, cache } = setup();
    stream.handle(request(XdsType.route, { node: edgeA, names: ['local-routes'] }));
    stream.handle(request(XdsType.listener));
    stream.handle(request(XdsType.cluster));
    for (const response of io.take()) stream.handle(ack(response, response.typeUrl === XdsType.route ? ['local-routes'] : []));
    assert.deepEqual(io.sent, []);

    cache.publish(fleet({ aRoute: 'v2', aListener: 'v2', aCluster: 'v2' }));
    const pushed = io.take();
    assert.deepEqual(pushed.map((r) => r.typeUrl), [XdsType.cluster, XdsType.listener, XdsType.route]);
    assert.deepEqual(namesIn(pushed[2]), ['local-routes']);
  });

  it('does not push RDS when only routes the proxy did not name changed', () => {
    const { stream, io, cache } = setup();
    stream.handle(request(XdsType.route, { node: edgeA, names: ['local-routes'] }));
    stream.handle(ack(io.takeOne(), ['local-routes']));
    cache.publish(fleet({ aExtraRoute: 'v2' }));
    assert.deepEqual(io.sent, []);
  });

  it('pushes nothing to one edge proxy when another node changes', () => {
    const { stream, io, cache } = setup();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    stream.handle(ack(io.takeOne()));
    cache.publish(fleet({ bCluster: 'v2' }));
    assert.deepEqual(io.sent, []);
  });

  it('pushes empty responses when the proxy’s node is removed, and resources once it appears', () => {
    const h = harness(translation(resourceSet({})));
    const { stream, io } = h.open();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    const empty = io.takeOne();
    assert.deepEqual(empty.resources, []);
    stream.handle(ack(empty));
    h.cache.publish(fleet());
    const appeared = io.takeOne();
    assert.deepEqual(namesIn(appeared), ['cloud', 'local-10250']);
    stream.handle(ack(appeared));
    h.cache.publish(translation(resourceSet({})));
    const removed = io.takeOne();
    assert.deepEqual(removed.resources, []);
    assert.equal(removed.versionInfo, empty.versionInfo);
  });
});

describe('SotW stream: flow control (a slow proxy gets the newest state, never a queue)', () => {
  it('holds changes while a response is unanswered and sends only the newest once the proxy answers', async () => {
    const h = harness(fleet());
    const { stream, io } = h.open();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    const first = io.takeOne();
    h.cache.publish(fleet({ aCluster: 'v2' }));
    h.cache.publish(fleet({ aCluster: 'v3' }));
    assert.deepEqual(io.sent, [], 'nothing while the first response is unanswered');
    assert.equal(await metricValue(h.metrics.deferred, { type: 'Cluster' }), 1);
    stream.handle(ack(first));
    const newest = io.takeOne();
    assert.equal(newest.versionInfo, h.cache.current(A, XdsType.cluster).version);
    stream.handle(ack(newest));
    assert.deepEqual(io.sent, [], 'v2 never went out');
  });

  it('sends nothing after an answer when the content came back to what was sent', () => {
    const h = harness(fleet());
    const { stream, io } = h.open();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    const first = io.takeOne();
    h.cache.publish(fleet({ aCluster: 'v2' }));
    h.cache.publish(fleet());
    stream.handle(ack(first));
    assert.deepEqual(io.sent, []);
  });

  it('writes nothing while the transport is full, then the newest state of each owed type, in ADS order', () => {
    const h = harness(fleet());
    const { stream, io } = h.open();
    io.writable = false;
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    const clusters = io.takeOne();
    stream.handle(request(XdsType.listener, { node: edgeA }));
    stream.handle(ack(clusters));
    h.cache.publish(fleet({ aCluster: 'v2', aListener: 'v2' }));
    assert.deepEqual(io.sent, [], 'the buffer is full: nothing more is written');
    io.writable = true;
    stream.drained();
    assert.deepEqual(io.take().map((r) => r.typeUrl), [XdsType.cluster, XdsType.listener]);
  });

  it('answers a request that changes the subscription even when the version stays', () => {
    const h = harness(fleet());
    const { stream, io } = h.open();
    stream.handle(request(XdsType.route, { node: edgeA, names: ['local'] }));
    const routes = io.takeOne();
    stream.handle({ ...ack(routes), resourceNames: ['local', 'absent'] });
    assert.equal(io.take().length, 1, 'a changed subscription is answered');
  });
});

describe('SotW stream: garbage in a request', () => {
  it('ignores an unknown type URL, counts it, and keeps the stream', async () => {
    const { stream, io, ledger, metrics } = setup();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    io.take();
    stream.handle(request('type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig'));
    assert.deepEqual(io.sent, []);
    assert.deepEqual(io.failures, []);
    assert.equal(await metricValue(metrics.rejectedRequests, { reason: 'unknown_type' }), 1);
    assert.equal(ledger.forKey(A).length, 1);
    stream.handle(request(XdsType.listener));
    assert.deepEqual(namesIn(io.takeOne()), ['tunnel']);
  });

  it('keeps a stream whose very first request has an unknown type URL', () => {
    const { stream, io } = setup();
    stream.handle(request('type.googleapis.com/envoy.service.runtime.v3.Runtime', { node: edgeA }));
    assert.deepEqual(io.sent, []);
    assert.deepEqual(io.failures, []);
    stream.handle(request(XdsType.cluster));
    assert.deepEqual(namesIn(io.takeOne()), ['cloud', 'local-10250']);
  });

  it('ignores a request naming more than MAX_RESOURCE_NAMES resources, but not one naming exactly that many', async () => {
    const { stream, io, metrics, ledger } = setup();
    const names = Array.from({ length: MAX_RESOURCE_NAMES }, (_, i) => `routes-${i}`);
    stream.handle(request(XdsType.route, { node: edgeA, names: [...names, 'local-routes'] }));
    assert.deepEqual(io.sent, []);
    assert.deepEqual(io.failures, []);
    assert.equal(await metricValue(metrics.rejectedRequests, { reason: 'too_many_names' }), 1);
    assert.equal(ledger.forKey(A)[0].types.get(XdsType.route), undefined);

    stream.handle(request(XdsType.route, { names: [...names.slice(1), 'local-routes'] }));
    assert.deepEqual(namesIn(io.takeOne()), ['local-routes']);
  });
});

describe('SotW stream: close and reconnect', () => {
  it('close() forgets the ledger entry, stops pushes and ignores later requests', async () => {
    const { stream, io, cache, ledger, metrics } = setup();
    stream.handle(request(XdsType.cluster, { node: edgeA }));
    io.take();
    stream.close();
    assert.deepEqual(ledger.all(), []);
    assert.equal(await metricValue(metrics.streams, { role: 'edge' }), 0);
    cache.publish(fleet({ aCluster: 'v2' }));
    stream.handle(request(XdsType.listener));
    assert.deepEqual(io.sent, []);
    stream.close(); // twice is harmless
    assert.equal(await metricValue(metrics.streams, { role: 'edge' }), 0);
  });

  it('gives a reconnecting proxy (old version_info, no nonce) a full response on its new stream', () => {
    const h = harness(fleet());
    const first = h.open();
    first.stream.handle(request(XdsType.cluster, { node: edgeA }));
    first.stream.handle(request(XdsType.route, { names: ['local-routes'] }));
    const [clusters, routes] = first.io.take();
    first.stream.handle(ack(clusters));
    first.stream.handle(ack(routes, ['local-routes']));
    first.stream.close();

    const second = h.open();
    second.stream.handle(request(XdsType.cluster, { node: edgeA, version: clusters.versionInfo }));
    second.stream.handle(request(XdsType.route, { names: ['local-routes'], version: routes.versionInfo }));
    const [clustersAgain, routesAgain] = second.io.take();
    assert.deepEqual(namesIn(clustersAgain), ['cloud', 'local-10250']);
    assert.equal(clustersAgain.versionInfo, clusters.versionInfo);
    assert.deepEqual(namesIn(routesAgain), ['local-routes']);
    assert.equal(routesAgain.versionInfo, routes.versionInfo);
    assert.deepEqual(h.ledger.all().map((e) => e.streamId), [second.id]);
  });

  it('gives a proxy moving to another replica the same versions for the same content', () => {
    const here = harness(fleet());
    const there = harness(fleet());
    const a = here.open();
    const b = there.open();
    for (const { stream } of [a, b]) {
      stream.handle(request(XdsType.cluster, { node: edgeA }));
      stream.handle(request(XdsType.route, { names: ['local-routes'] }));
    }
    assert.deepEqual(
      a.io.take().map((r) => [r.typeUrl, r.versionInfo]),
      b.io.take().map((r) => [r.typeUrl, r.versionInfo]),
    );
  });

  it('keeps two streams of one proxy apart while it reconnects', () => {
    const h = harness(fleet());
    const old = h.open();
    const fresh = h.open();
    old.stream.handle(request(XdsType.cluster, { node: edgeA }));
    fresh.stream.handle(request(XdsType.cluster, { node: edgeA }));
    old.io.take();
    fresh.stream.handle(ack(fresh.io.takeOne()));
    assert.deepEqual(h.ledger.forKey(A).map((e) => e.streamId), [old.id, fresh.id]);
    old.stream.close();
    h.cache.publish(fleet({ aCluster: 'v2' }));
    assert.deepEqual(old.io.sent, []);
    assert.equal(fresh.io.take().length, 1);
    assert.deepEqual(h.ledger.forKey(A).map((e) => e.streamId), [fresh.id]);
  });
});
