// Property tests for one SotW stream: arbitrary sequences of discovery requests (any type URL, node or
// none, random nonces and versions, odd and huge name lists, ACKs and NACKs of real responses) mixed
// with cache publishes. Whatever arrives, the stream must not throw, must only answer types it was asked
// for and serves, must count its nonces up, and must still answer a proper LDS request at the end;
// unless the first request named no usable identity, in which case it fails once and stays silent.
//
// Bounded in time: each property stops after its time budget even if it has not done all its runs.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Node } from '../../envoy/generated/envoy/config/core/v3/base.js';
import type { DiscoveryRequest, DiscoveryResponse } from '../../envoy/generated/envoy/service/discovery/v3/discovery.js';
import { ADS_ORDER, XdsType, isXdsTypeUrl } from '../../envoy/xds-types.js';
import { CLOUD_KEY, edgeKey } from '../cache/snapshot-cache.js';
import type { ResourceSet, Translation } from '../translate/translate.js';
import { identify } from './identity.js';
import { SotwStream } from './sotw-stream.js';
import { MAX_RESOURCE_NAMES } from './stream-base.js';
import { FakeStreamIo, cluster, harness, type Harness, listener, node, request, resourceSet, route, secret, translation } from './testing.js';

/** Each property's time budget, well inside the file's ~10 s. */
const TIME_LIMIT_MS = 2500;
const options = (numRuns: number): fc.Parameters<unknown> => ({
  numRuns,
  plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)],
});

// ---------------------------------------------------------------------------------------------
// What the cache holds: a few fleets to publish, so pushes happen mid-conversation
// ---------------------------------------------------------------------------------------------

function edgeSet(node: string, tag: string): ResourceSet {
  return resourceSet({
    [XdsType.secret]: [secret(`secret-${node}`)],
    [XdsType.cluster]: [cluster('cloud'), cluster('local-10250', tag)],
    [XdsType.listener]: [listener('tunnel', tag)],
    [XdsType.route]: [route('local-routes', tag), route('extra-routes')],
  });
}

/** A fleet: the cloud plus edges with the given names, each resource's bytes varied by `tag`. */
function fleet(edges: readonly string[], tag: string): Translation {
  return translation(
    resourceSet({
      [XdsType.cluster]: [cluster('tunnel', tag)],
      [XdsType.listener]: [listener('handshake'), listener('connect', tag)],
      [XdsType.route]: [route('connect-routes', tag)],
    }),
    Object.fromEntries(edges.map((name) => [name, edgeSet(name, tag)])),
  );
}

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

const KNOWN_TYPES: readonly string[] = ADS_ORDER;

/** Strings of every kind: ASCII, any UTF-16 (lone surrogates included), and very long ones. */
const oddString = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  fc.nat({ max: 5000 }).map((n) => 'x'.repeat(n)),
);

const typeUrl = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...KNOWN_TYPES) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '',
      'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig',
      'type.googleapis.com/envoy.service.runtime.v3.Runtime',
      'type.googleapis.com/envoy.api.v2.Listener',
      `${XdsType.listener} `,
      XdsType.listener.toUpperCase(),
      'type.googleapis.com/',
    ),
  },
  { weight: 1, arbitrary: oddString },
);

const NODE_NAMES = ['node-a', 'node-b', 'node-c'] as const;

/** Nodes: proper edge and cloud identities, and every way of getting one wrong. */
const nodeArb: fc.Arbitrary<Node | undefined> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NODE_NAMES).map((id) => node('edge', id)) },
  { weight: 2, arbitrary: fc.constantFrom('cloud-1', 'cloud-2').map((id) => node('cloud', id)) },
  { weight: 1, arbitrary: fc.constant(undefined) },
  {
    weight: 2,
    arbitrary: fc
      .record({
        cluster: fc.oneof(fc.constantFrom('edge', 'cloud', '', 'Edge', 'edge ', 'edge-nodes'), oddString),
        id: fc.oneof(fc.constantFrom('', 'node-a', ' ', '*'), oddString),
        metadata: fc.option(fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 })), { nil: undefined }),
      })
      .map(({ cluster, id, metadata }) => ({ ...node(cluster, id), metadata })),
  },
);

// Built once: a list just over the limit and one exactly at it, handed out by reference.
const TOO_MANY_NAMES = Array.from({ length: MAX_RESOURCE_NAMES + 1 }, (_, i) => `routes-${i}`);
const EXACTLY_MAX_NAMES = [...TOO_MANY_NAMES.slice(0, MAX_RESOURCE_NAMES - 1), 'local-routes'];

const resourceNames = fc.oneof(
  { weight: 4, arbitrary: fc.constant([] as string[]) },
  { weight: 4, arbitrary: fc.subarray(['local-routes', 'extra-routes', 'connect-routes', 'tunnel', 'cloud', '*', 'nope']) },
  { weight: 2, arbitrary: fc.array(oddString, { maxLength: 30 }) },
  { weight: 1, arbitrary: fc.array(fc.constantFrom('local-routes', '*', ''), { minLength: 50, maxLength: 500 }) },
  { weight: 1, arbitrary: fc.constantFrom(TOO_MANY_NAMES, EXACTLY_MAX_NAMES) },
);

/** Which nonce a request answers: none, garbage, or the nonce of a response actually sent earlier. */
const nonceChoice = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 1, arbitrary: oddString.map((value) => ({ kind: 'random' as const, value })) },
  { weight: 4, arbitrary: fc.nat().map((index) => ({ kind: 'sent' as const, index })) },
);

type Step =
  | {
      kind: 'request';
      typeUrl: string;
      node: Node | undefined;
      names: readonly string[];
      version: { kind: 'none' } | { kind: 'random'; value: string } | { kind: 'sent' };
      nonce: { kind: 'none' } | { kind: 'random'; value: string } | { kind: 'sent'; index: number };
      error: string | undefined;
      /** Answering a sent response: use its type URL rather than the random one (a real ACK/NACK). */
      sameType: boolean;
    }
  | { kind: 'publish'; edges: readonly string[]; tag: string }
  | { kind: 'publishEmpty' };

const requestStep: fc.Arbitrary<Step> = fc.record({
  kind: fc.constant('request' as const),
  typeUrl,
  node: nodeArb,
  names: resourceNames,
  version: fc.oneof(
    fc.constant({ kind: 'none' as const }),
    fc.constant({ kind: 'sent' as const }),
    oddString.map((value) => ({ kind: 'random' as const, value })),
  ),
  nonce: nonceChoice,
  error: fc.option(oddString, { nil: undefined, freq: 3 }),
  sameType: fc.boolean(),
});

const publishStep: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('publish' as const),
      edges: fc.subarray([...NODE_NAMES, 'node-z', 'ü-node', 'a'.repeat(253)]),
      tag: fc.constantFrom('', 'v1', 'v2', 'v3'),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'publishEmpty' as const }) },
);

const steps = fc.array(fc.oneof({ weight: 3, arbitrary: requestStep }, { weight: 1, arbitrary: publishStep }), {
  maxLength: 40,
});

// ---------------------------------------------------------------------------------------------
// Running a sequence and checking what came out
// ---------------------------------------------------------------------------------------------

/** Also remembers how many responses had been sent when the stream was failed. */
class RecordingIo extends FakeStreamIo {
  /** Every response ever sent; `sent` is emptied by take(). */
  readonly all: DiscoveryResponse[] = [];
  sentAtFailure: number | undefined;

  override send(response: DiscoveryResponse): boolean {
    this.all.push(response);
    return super.send(response);
  }

  override fail(message: string): void {
    this.sentAtFailure ??= this.all.length;
    super.fail(message);
  }
}

function toRequest(step: Extract<Step, { kind: 'request' }>, sent: readonly DiscoveryResponse[]): DiscoveryRequest {
  const answered = step.nonce.kind === 'sent' && sent.length > 0 ? sent[step.nonce.index % sent.length] : undefined;
  const nonce = step.nonce.kind === 'random' ? step.nonce.value : (answered?.nonce ?? '');
  const version =
    step.version.kind === 'random' ? step.version.value : step.version.kind === 'sent' ? (answered?.versionInfo ?? '') : '';
  return request(answered && step.sameType ? answered.typeUrl : step.typeUrl, {
    node: step.node,
    names: step.names,
    version,
    nonce,
    error: step.error,
  });
}

interface Outcome {
  io: RecordingIo;
  requestedTypes: Set<string>;
  firstNode: Node | undefined;
  requests: number;
}

function runSteps(h: Harness, io: RecordingIo, stream: SotwStream, plan: readonly Step[]): Outcome {
  const requestedTypes = new Set<string>();
  let firstNode: Node | undefined;
  let requests = 0;
  for (const step of plan) {
    if (step.kind === 'request') {
      const req = toRequest(step, io.all);
      if (requests === 0) firstNode = req.node;
      requests++;
      requestedTypes.add(req.typeUrl);
      stream.handle(req);
    } else {
      const result = h.cache.publish(step.kind === 'publish' ? fleet(step.edges, step.tag) : translation(resourceSet({})));
      // A stream's change handler that throws would land here, not in the test.
      assert.deepEqual(result.listenerErrors, [], 'a stream threw while being told of a cache change');
    }
  }
  return { io, requestedTypes, firstNode, requests };
}

function assertResponsesSane(outcome: Outcome): void {
  let previous = 0;
  for (const response of outcome.io.all) {
    assert.ok(isXdsTypeUrl(response.typeUrl), `response for a type not served: ${response.typeUrl}`);
    assert.ok(outcome.requestedTypes.has(response.typeUrl), `response for a type never requested: ${response.typeUrl}`);
    assert.match(response.nonce, /^[1-9][0-9]*$/);
    const nonce = Number(response.nonce);
    assert.ok(nonce > previous, `nonce ${response.nonce} after ${previous}`);
    previous = nonce;
    for (const resource of response.resources) assert.equal(resource.typeUrl, response.typeUrl);
  }
}

function startingFleet(): Translation {
  return fleet(['node-a', 'node-b'], '');
}

describe('SotW stream under arbitrary input (property tests)', () => {
  it('never throws, answers only requested served types with increasing nonces, and still serves LDS', () => {
    fc.assert(
      fc.property(steps, (plan) => {
        const h = harness(startingFleet());
        const io = new RecordingIo();
        const ours = new SotwStream(1, h.deps, io);
        const outcome = runSteps(h, io, ours, plan);
        assertResponsesSane(outcome);

        const identity = outcome.requests === 0 ? undefined : identify(outcome.firstNode);
        if (identity !== undefined && !identity.ok) {
          // Refused on its first request: failed exactly once, nothing sent before or after.
          assert.equal(io.failures.length, 1);
          assert.equal(io.sentAtFailure, 0);
          assert.equal(io.all.length, 0);
          ours.handle(request(XdsType.listener, { node: node('edge', 'node-a') }));
          h.cache.publish(fleet(['node-a'], 'after-failure'));
          assert.equal(io.all.length, 0, 'a failed stream sent a response');
          assert.equal(io.failures.length, 1, 'a failed stream was failed again');
          return;
        }
        assert.deepEqual(io.failures, []);

        // A fresh LDS request (no nonce) from a proper proxy is answered with the current listeners.
        const fresh = node('edge', 'node-a');
        const key = identity?.ok ? identity.identity.key : edgeKey('node-a');
        io.take();
        ours.handle(request(XdsType.listener, { node: fresh }));
        const answer = io.takeOne();
        assert.equal(answer.typeUrl, XdsType.listener);
        assert.equal(answer.versionInfo, h.cache.current(key, XdsType.listener).version);
        assert.equal(answer.resources.length, h.cache.current(key, XdsType.listener).resources.size);
        outcome.requestedTypes.add(XdsType.listener);
        assertResponsesSane(outcome);
        ours.close();
      }),
      options(1000),
    );
  });

  it('a stream that was identified keeps answering a proper ACK loop after garbage', () => {
    // Identified first, then garbage, then a well-behaved proxy: every type it asks for is answered and
    // every ACK of the newest response is taken quietly.
    fc.assert(
      fc.property(fc.constantFrom(node('edge', 'node-a'), node('cloud', 'cloud-1')), steps, (proxy, plan) => {
        const h = harness(startingFleet());
        const io = new RecordingIo();
        const stream = new SotwStream(1, h.deps, io);
        stream.handle(request(XdsType.cluster, { node: proxy }));
        const outcome = runSteps(h, io, stream, plan);
        outcome.requestedTypes.add(XdsType.cluster);
        assertResponsesSane(outcome);
        assert.deepEqual(io.failures, []);
        const key = proxy.cluster === 'cloud' ? CLOUD_KEY : edgeKey(proxy.id);
        io.take();
        for (const type of [XdsType.cluster, XdsType.listener]) {
          stream.handle(request(type));
          const response = io.takeOne();
          assert.equal(response.versionInfo, h.cache.current(key, type).version);
          stream.handle(request(type, { version: response.versionInfo, nonce: response.nonce }));
          assert.deepEqual(io.take(), [], 'an ACK of the newest response is answered with nothing');
        }
      }),
      options(500),
    );
  });
});
