// The ADS server over real gRPC (@grpc/grpc-js on loopback): what reaches it is bytes, not messages.
// Garbage, a truncated protobuf and an empty message each get a gRPC error status on their own stream;
// the server stays up and a well-behaved ADS client is served right afterwards.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  AggregatedDiscoveryServiceClient,
  AggregatedDiscoveryServiceService,
} from '../../envoy/generated/envoy/service/discovery/v3/ads.js';
import { DiscoveryRequest, type DeltaDiscoveryResponse, type DiscoveryResponse } from '../../envoy/generated/envoy/service/discovery/v3/discovery.js';
import { XdsType } from '../../envoy/xds-types.js';
import { edgeKey } from '../cache/snapshot-cache.js';
import { listenAds } from './ads-server.js';
import { MAX_RESOURCE_NAMES } from './stream-base.js';
import {
  harness,
  metricValue,
  namesIn,
  node,
  request,
  type Harness,
  fleet,
} from './testing.js';

const WAIT_MS = 5000;
const STREAM_PATH = AggregatedDiscoveryServiceService.streamAggregatedResources.path;


interface Server {
  readonly h: Harness;
  readonly address: string;
}

/** A real ADS server on 127.0.0.1:<free port>, shut down when the test ends. */
async function startServer(t: TestContext): Promise<Server> {
  const h = harness(fleet());
  const { server, port } = await listenAds(h.deps, '127.0.0.1:0');
  t.after(() => server.forceShutdown());
  return { h, address: `127.0.0.1:${port}` };
}

/** A client that writes raw bytes as the request message and hands back raw response bytes. */
function rawStream(t: TestContext, address: string): grpc.ClientDuplexStream<Buffer, Buffer> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  t.after(() => client.close());
  const call = client.makeBidiStreamRequest<Buffer, Buffer>(STREAM_PATH, (bytes) => bytes, (bytes) => bytes);
  // The failure is read from 'status'; without an 'error' listener it would be thrown.
  call.on('error', () => undefined);
  return call;
}

/** The status a call ended with, failing the test if it does not end within WAIT_MS. */
function statusOf<Req, Res>(call: grpc.ClientDuplexStream<Req, Res>): Promise<grpc.StatusObject> {
  // Not events.once: that rejects on the 'error' a failed call emits just before its 'status'.
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the call did not end within ${WAIT_MS} ms`)), WAIT_MS);
    call.on('error', () => undefined);
    call.once('status', (status: grpc.StatusObject) => {
      clearTimeout(timer);
      resolve(status);
    });
  });
}

function adsClient(t: TestContext, address: string): AggregatedDiscoveryServiceClient {
  const client = new AggregatedDiscoveryServiceClient(address, grpc.credentials.createInsecure());
  t.after(() => client.close());
  return client;
}

/** Reads the next response of a typed stream, failing after WAIT_MS or on an error status. */
async function nextResponse(call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>): Promise<DiscoveryResponse> {
  const [response] = (await once(call, 'data', { signal: AbortSignal.timeout(WAIT_MS) })) as [DiscoveryResponse];
  return response;
}

/** Waits until the ledger records an ACK from the proxy with that key. */
async function waitForAck(h: Harness, key: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (![...(h.ledger.forKey(key)[0]?.types.values() ?? [])].some((t) => t.status === 'ACKED')) {
    if (Date.now() > deadline) throw new Error(`no ACK from ${key} within ${WAIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A normal ADS conversation: node-a's Envoy asks for its listeners and gets them. */
async function assertServesLds(t: TestContext, server: Server): Promise<void> {
  const call = adsClient(t, server.address).streamAggregatedResources();
  call.write(request(XdsType.listener, { node: node('edge', 'node-a') }));
  const response = await nextResponse(call);
  assert.equal(response.typeUrl, XdsType.listener);
  assert.deepEqual(namesIn(response), ['tunnel']);
  assert.equal(response.versionInfo, server.h.cache.current(edgeKey('node-a'), XdsType.listener).version);
  call.end();
  await statusOf(call);
}

/** A well-formed first request, so the bytes after it reach a stream that has an identity. */
function encodedRequest(): Buffer {
  return Buffer.from(DiscoveryRequest.encode(request(XdsType.listener, { node: node('edge', 'node-a'), names: [] })).finish());
}

test('garbage bytes end that stream with an error status and the server keeps serving', async (t) => {
  const server = await startServer(t);
  // Field 536870911 with wire type 7, which does not exist: no protobuf reader can accept it.
  const call = rawStream(t, server.address);
  call.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]));
  const status = await statusOf(call);
  assert.notEqual(status.code, grpc.status.OK);
  assert.match(status.details, /deserializ/i);
  await assertServesLds(t, server);
});

test('a truncated protobuf ends that stream with an error status and the server keeps serving', async (t) => {
  const server = await startServer(t);
  const whole = encodedRequest();
  const call = rawStream(t, server.address);
  call.write(whole.subarray(0, whole.length - 5));
  const status = await statusOf(call);
  assert.notEqual(status.code, grpc.status.OK);
  assert.match(status.details, /deserializ/i);
  await assertServesLds(t, server);
});

test('an empty message (no node) is refused with an error status naming node.id', async (t) => {
  const server = await startServer(t);
  const call = rawStream(t, server.address);
  call.write(Buffer.alloc(0));
  const status = await statusOf(call);
  // The stream's refusal of an identity: INVALID_ARGUMENT before mutual TLS, PERMISSION_DENIED with it.
  assert.ok([grpc.status.INVALID_ARGUMENT, grpc.status.PERMISSION_DENIED].includes(status.code), `status ${status.code} ${status.details}`);
  assert.match(status.details, /node\.id/);
  await assertServesLds(t, server);
});

test('garbage after a good request ends the stream and forgets it: no ledger entry or stream count left', async (t) => {
  const server = await startServer(t);
  const call = rawStream(t, server.address);
  const responses: Buffer[] = [];
  call.on('data', (bytes: Buffer) => responses.push(bytes));
  call.write(encodedRequest());
  await once(call, 'data', { signal: AbortSignal.timeout(WAIT_MS) });
  assert.equal(server.h.ledger.forKey(edgeKey('node-a')).length, 1);
  call.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]));
  const status = await statusOf(call);
  assert.notEqual(status.code, grpc.status.OK);
  // The server learns of the end asynchronously; give it a moment to close the stream.
  const deadline = Date.now() + WAIT_MS;
  while (server.h.ledger.all().length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(server.h.ledger.all(), [], 'the failed stream is still in the ledger');
  assert.equal(await metricValue(server.h.metrics.streams, { role: 'edge' }), 0);
  await assertServesLds(t, server);
});

test(`a request naming ${MAX_RESOURCE_NAMES + 1} resources is ignored and the stream stays usable`, async (t) => {
  const server = await startServer(t);
  const call = adsClient(t, server.address).streamAggregatedResources();
  const names = Array.from({ length: MAX_RESOURCE_NAMES + 1 }, (_, i) => `routes-${i}`);
  call.write(request(XdsType.route, { node: node('edge', 'node-a'), names }));
  call.write(request(XdsType.listener));
  // Responses come in request order, so an answer to the oversized request would arrive first.
  const response = await nextResponse(call);
  assert.equal(response.typeUrl, XdsType.listener);
  assert.deepEqual(namesIn(response), ['tunnel']);
  assert.equal(await metricValue(server.h.metrics.rejectedRequests, { reason: 'too_many_names' }), 1);
  call.write(request(XdsType.route, { names: ['local-routes'] }));
  const routes = await nextResponse(call);
  assert.equal(routes.typeUrl, XdsType.route);
  assert.deepEqual(namesIn(routes), ['local-routes']);
  call.end();
  assert.equal((await statusOf(call)).code, grpc.status.OK);
});

test('DeltaAggregatedResources serves incremental xDS over real gRPC: resources, then an ACK', async (t) => {
  const server = await startServer(t);
  const call = adsClient(t, server.address).deltaAggregatedResources();
  call.on('error', () => undefined);
  const base = { resourceNamesUnsubscribe: [], resourceLocatorsSubscribe: [], resourceLocatorsUnsubscribe: [], initialResourceVersions: {}, errorDetail: undefined };
  call.write({ ...base, node: node('edge', 'node-a'), typeUrl: XdsType.cluster, resourceNamesSubscribe: ['*'], responseNonce: '' });
  const [response] = (await once(call, 'data', { signal: AbortSignal.timeout(WAIT_MS) })) as [DeltaDiscoveryResponse];
  assert.equal(response.typeUrl, XdsType.cluster);
  assert.deepEqual(response.resources.map((r) => r.name).sort(), ['cloud', 'local-10250']);
  call.write({ ...base, node: undefined, typeUrl: XdsType.cluster, resourceNamesSubscribe: [], responseNonce: response.nonce });
  await waitForAck(server.h, edgeKey('node-a'));
  call.end();
  assert.equal((await statusOf(call)).code, grpc.status.OK);
  await assertServesLds(t, server);
});
