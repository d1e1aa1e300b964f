// Test helpers for the protocol, in the style of go-control-plane's server_test.go: a fake stream that
// captures what the server sends, a request builder, and translations built by hand from tiny `Any`s.
// No gRPC and no processes.

import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Any } from '../../envoy/generated/google/protobuf/any.js';
import type { DiscoveryRequest, DiscoveryResponse } from '../../envoy/generated/envoy/service/discovery/v3/discovery.js';
import type { Node } from '../../envoy/generated/envoy/config/core/v3/base.js';
import { codecForTypeUrl, pack } from '../../envoy/registry.js';
import { XdsType, type XdsTypeUrl } from '../../envoy/xds-types.js';
import { Ledger } from '../cache/ledger.js';
import { SnapshotCache } from '../cache/snapshot-cache.js';
import type { ResourceSet, Translation } from '../translate/translate.js';
import { protocolMetrics, type ProtocolMetrics } from './metrics.js';
import { SotwStream } from './sotw-stream.js';
import type { StreamDeps, StreamIo } from './stream-base.js';

/** A StreamIo that records every response and failure instead of writing to a gRPC call. */
export class FakeIo<Response extends { typeUrl: string }> implements StreamIo<Response> {
  readonly sent: Response[] = [];
  readonly failures: string[] = [];
  /** What send() reports: false plays a transport whose buffer is full. */
  writable = true;

  send(response: Response): boolean {
    this.sent.push(response);
    return this.writable;
  }

  fail(message: string): void {
    this.failures.push(message);
  }

  /** The responses sent since the last call, emptying the record. */
  take(): Response[] {
    return this.sent.splice(0);
  }

  /** The one response sent since the last take; fails the test if there were none or several. */
  takeOne(): Response {
    const sent = this.take();
    if (sent.length !== 1) {
      throw new Error(`expected exactly one response, got ${sent.length}: ${sent.map((r) => r.typeUrl).join(', ')}`);
    }
    return sent[0];
  }
}

/** The SotW stream's fake transport. */
export class FakeStreamIo extends FakeIo<DiscoveryResponse> {}

export function node(cluster: string, id: string): Node {
  return {
    id,
    cluster,
    metadata: undefined,
    dynamicParameters: {},
    locality: undefined,
    userAgentName: 'envoy',
    userAgentVersion: undefined,
    userAgentBuildVersion: undefined,
    extensions: [],
    clientFeatures: [],
    listeningAddresses: [],
  };
}

export interface RequestOptions {
  node?: Node;
  names?: readonly string[];
  version?: string;
  nonce?: string;
  /** Makes the request a NACK carrying this message. */
  error?: string;
}

export function request(typeUrl: string, options: RequestOptions = {}): DiscoveryRequest {
  return {
    versionInfo: options.version ?? '',
    node: options.node,
    resourceNames: [...(options.names ?? [])],
    resourceLocators: [],
    typeUrl,
    responseNonce: options.nonce ?? '',
    errorDetail: options.error === undefined ? undefined : { code: 3, message: options.error, details: [] },
  };
}

/** The request Envoy sends to accept a response. */
export function ack(response: DiscoveryResponse, names: readonly string[] = []): DiscoveryRequest {
  return request(response.typeUrl, { names, version: response.versionInfo, nonce: response.nonce });
}

/** The request Envoy sends to reject a response: its nonce, the last accepted version, the error. */
export function nack(response: DiscoveryResponse, error: string, names: readonly string[] = [], acceptedVersion = ''): DiscoveryRequest {
  return request(response.typeUrl, { names, version: acceptedVersion, nonce: response.nonce, error });
}

// Tiny resources: the name is enough to tell them apart, `tag` changes their bytes.

export function cluster(name: string, tag = ''): Any {
  return pack('envoy.config.cluster.v3.Cluster', { name, altStatName: tag });
}

export function listener(name: string, tag = ''): Any {
  return pack('envoy.config.listener.v3.Listener', { name, statPrefix: tag });
}

export function route(name: string, tag = ''): Any {
  return pack('envoy.config.route.v3.RouteConfiguration', { name, internalOnlyHeaders: tag === '' ? [] : [tag] });
}

export function secret(name: string): Any {
  return pack('envoy.extensions.transport_sockets.tls.v3.Secret', { name });
}

/** Resources by type, each named by its own `name` field. */
export function resourceSet(entries: Partial<Record<XdsTypeUrl, readonly Any[]>>): ResourceSet {
  const set = new Map<XdsTypeUrl, Map<string, Any>>();
  for (const [type, anys] of Object.entries(entries) as [XdsTypeUrl, readonly Any[]][]) {
    set.set(type, new Map(anys.map((any) => [nameOf(any), any])));
  }
  return set;
}

export function translation(cloud: ResourceSet, edges: Record<string, ResourceSet> = {}): Translation {
  const admission = { edgeNodes: [], cloudNodes: [], cloudRanges: [], errors: [] };
  return { ok: true, cloud, sidecar: new Map(), edges: new Map(Object.entries(edges)), errors: [], admission };
}

/** The name of a packed resource of one of the served types (`cluster_name` for an endpoint). */
export function nameOf(any: Any): string {
  const codec = codecForTypeUrl(any.typeUrl);
  if (!codec) throw new Error(`not a registered type: ${any.typeUrl}`);
  const message = codec.decode(any.value) as { name?: string; clusterName?: string };
  return message.name ?? message.clusterName ?? '';
}

/** Names of the resources in a response, sorted. */
export function namesIn(response: DiscoveryResponse): string[] {
  return response.resources.map(nameOf).sort();
}

export interface Harness {
  readonly cache: SnapshotCache;
  readonly ledger: Ledger;
  readonly metrics: ProtocolMetrics;
  readonly registry: Registry;
  readonly deps: StreamDeps;
  /** A new stream with its own fake io; ids count up from 1. */
  open(): { stream: SotwStream; io: FakeStreamIo; id: number };
}

export const FIXED_NOW = new Date('2025-01-02T03:04:05.000Z');

export function harness(initial?: Translation): Harness {
  const cache = new SnapshotCache();
  if (initial) cache.publish(initial);
  const ledger = new Ledger();
  const registry = new Registry();
  const metrics = protocolMetrics(registry);
  const deps: StreamDeps = { watcher: cache, ledger, logger: pino({ level: 'silent' }), metrics, now: () => FIXED_NOW };
  let nextId = 0;
  return {
    cache,
    ledger,
    metrics,
    registry,
    deps,
    open() {
      const id = ++nextId;
      const io = new FakeStreamIo();
      return { stream: new SotwStream(id, deps, io), io, id };
    },
  };
}

/** The value of a counter or gauge for one label value, 0 when never touched. */
export async function metricValue(metric: { get(): Promise<{ values: { labels: object; value: number }[] }> }, label: Record<string, string>): Promise<number> {
  const { values } = await metric.get();
  const match = values.find((v) => Object.entries(label).every(([k, want]) => (v.labels as Record<string, unknown>)[k] === want));
  return match?.value ?? 0;
}

export interface Tags {
  aCluster?: string;
  aListener?: string;
  aRoute?: string;
  aExtraRoute?: string;
  aSecret?: string;
  bCluster?: string;
}

/** The cloud and two edge nodes; a tag changes the bytes of one resource. */
export function fleet(tags: Tags = {}): Translation {
  return translation(
    resourceSet({
      [XdsType.cluster]: [cluster('tunnel')],
      [XdsType.listener]: [listener('handshake'), listener('connect')],
      [XdsType.route]: [route('connect-routes')],
    }),
    {
      'node-a': resourceSet({
        [XdsType.secret]: [secret(`secret-a${tags.aSecret ?? ''}`)],
        [XdsType.cluster]: [cluster('cloud'), cluster('local-10250', tags.aCluster)],
        [XdsType.listener]: [listener('tunnel', tags.aListener)],
        [XdsType.route]: [route('local-routes', tags.aRoute), route('extra-routes', tags.aExtraRoute)],
      }),
      'node-b': resourceSet({
        [XdsType.cluster]: [cluster('cloud-b'), cluster('local-10260', tags.bCluster)],
        [XdsType.listener]: [listener('tunnel-b')],
        [XdsType.route]: [route('local-routes-b')],
      }),
    },
  );
}
