// Many edge proxies in one process, for the fleet benchmark: each speaks incremental ADS to the xDS
// server over its own gRPC channel with mutual TLS, as an edge Envoy would (node id = its node name,
// cluster "edge", a client certificate naming it), subscribes to what an edge Envoy subscribes to,
// ACKs every response and, when the stream breaks, opens it again at once, telling the server what it
// holds (initial_resource_versions): the call waits for its channel, which reconnects with gRPC's
// backoff (0.5 s growing 1.6× to 30 s, ±20 %; Envoy's is 0.5 s doubling to 30 s with full jitter,
// which spreads a storm more thinly).
//
// It reports on GET /status of a loopback port: how many streams are open, how many edges hold an
// answered (ACKed) response of every type on their current stream ("settled"), and the gRPC message
// bytes received. It issues every edge's certificate first and dials once asked (GET /dial).
//
//   node --import tsx bench/fleet/synthetic-edges.ts --xds 127.0.0.1:PORT --certs DIR --nodes FILE --status-port N

import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { edgeRequest, loadBundleAuthority, bundlePaths } from '../../certs/bundle.js';
import { issue } from '../../certs/issue.js';
import { AggregatedDiscoveryServiceService } from '../../envoy/generated/envoy/service/discovery/v3/ads.js';
import { DeltaDiscoveryRequest, DeltaDiscoveryResponse } from '../../envoy/generated/envoy/service/discovery/v3/discovery.js';
import { XdsType, type XdsTypeUrl } from '../../envoy/xds-types.js';

/** What an edge Envoy subscribes to (its bootstrap names CDS and LDS; they name the rest). */
const SUBSCRIPTIONS: ReadonlyArray<readonly [XdsTypeUrl, readonly string[]]> = [
  [XdsType.cluster, []],
  [XdsType.secret, ['cloud_ca', 'edge_identity']],
  [XdsType.listener, []],
  [XdsType.route, ['local_ports']],
];

const DELTA = AggregatedDiscoveryServiceService.deltaAggregatedResources;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** Refusals: the server will say the same again, so the edge gives up (counted as rejected). */
const FINAL_CODES: ReadonlySet<number> = new Set([grpc.status.PERMISSION_DENIED, grpc.status.INVALID_ARGUMENT, grpc.status.UNAUTHENTICATED]);

export interface SyntheticEdgesStatus {
  readonly edges: number;
  readonly connected: number;
  readonly settled: number;
  readonly responses: number;
  readonly bytesReceived: number;
  readonly rejected: number;
  readonly lastError?: string;
  /** Streams that ended, ever (a restart of the server breaks one per edge). */
  readonly streamsBroken: number;
  /** Client certificates issued so far; the edges dial once all are and GET /dial is asked. */
  readonly issued: number;
  /** When the first edge dialled (ms since the epoch; 0 before). */
  readonly dialingSince: number;
}

const totals = { connected: 0, settled: 0, responses: 0, bytesReceived: 0, rejected: 0, streamsBroken: 0, lastError: undefined as string | undefined, issued: 0, dialingSince: 0 };

class SyntheticEdge {
  private readonly held = new Map<string, Map<string, string>>();
  private answered = new Set<string>();
  private connected = false;
  private settled = false;

  constructor(
    private readonly name: string,
    private readonly client: grpc.Client,
  ) {}

  open(): void {
    // Queued until the channel is connected, as Envoy's xDS stream waits for its cluster's connection.
    const metadata = new grpc.Metadata();
    metadata.setOptions({ waitForReady: true });
    const call = this.client.makeBidiStreamRequest<DeltaDiscoveryRequest, DeltaDiscoveryResponse>(
      DELTA.path,
      (request) => Buffer.from(DeltaDiscoveryRequest.encode(request).finish()),
      (bytes) => {
        totals.bytesReceived += bytes.length;
        return DeltaDiscoveryResponse.decode(bytes);
      },
      metadata,
    );
    this.answered = new Set();
    let first = true;
    for (const [typeUrl, names] of SUBSCRIPTIONS) {
      const held = this.held.get(typeUrl) ?? new Map<string, string>();
      call.write(
        DeltaDiscoveryRequest.fromPartial({
          node: first ? { id: this.name, cluster: 'edge', userAgentName: 'synthetic-edge' } : undefined,
          typeUrl,
          resourceNamesSubscribe: [...names],
          initialResourceVersions: Object.fromEntries(held),
        }),
      );
      first = false;
    }
    call.on('data', (response: DeltaDiscoveryResponse) => {
      if (!this.connected) {
        this.connected = true;
        totals.connected++;
      }
      totals.responses++;
      const held = this.held.get(response.typeUrl) ?? new Map<string, string>();
      for (const resource of response.resources) held.set(resource.name, resource.version);
      for (const name of response.removedResources) held.delete(name);
      this.held.set(response.typeUrl, held);
      call.write(DeltaDiscoveryRequest.fromPartial({ typeUrl: response.typeUrl, responseNonce: response.nonce }));
      this.answered.add(response.typeUrl);
      if (!this.settled && this.answered.size === SUBSCRIPTIONS.length) {
        this.settled = true;
        totals.settled++;
      }
    });
    call.on('error', (error: grpc.ServiceError) => {
      totals.lastError = `${this.name}: ${error.details || error.message}`;
    });
    call.on('status', (status: grpc.StatusObject) => this.broken(status.code));
  }

  private broken(code: grpc.status): void {
    totals.streamsBroken++;
    if (this.connected) totals.connected--;
    if (this.settled) totals.settled--;
    this.connected = false;
    this.settled = false;
    if (FINAL_CODES.has(code)) totals.rejected++;
    else setImmediate(() => this.open());
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { xds: { type: 'string' }, certs: { type: 'string' }, nodes: { type: 'string' }, 'status-port': { type: 'string' } },
  });
  if (!values.xds || !values.certs || !values.nodes || !values['status-port']) throw new Error('usage: --xds HOST:PORT --certs DIR --nodes FILE --status-port N');
  const names = readFileSync(values.nodes, 'utf8').split('\n').filter((n) => n !== '');
  const ca = await loadBundleAuthority(values.certs, 'ca');
  const trust = readFileSync(bundlePaths(values.certs).ca);

  let dial: () => void = () => undefined;
  const dialAsked = new Promise<void>((resolve) => (dial = resolve));
  const server = createServer((request, response) => {
    if (request.url === '/dial') dial();
    const status: SyntheticEdgesStatus = { edges: names.length, ...totals };
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(status));
  });
  await new Promise<void>((resolve) => server.listen(Number(values['status-port']), '127.0.0.1', resolve));

  // Certificates first, so that issuing them is not part of what the benchmark times.
  const pems = [];
  for (const name of names) {
    pems.push(await issue(ca, edgeRequest(name)));
    totals.issued++;
  }
  await dialAsked;
  totals.dialingSince = Date.now();
  for (const [i, name] of names.entries()) {
    const credentials = grpc.credentials.createSsl(trust, Buffer.from(pems[i].key), Buffer.from(pems[i].cert));
    const client = new grpc.Client(values.xds, credentials, {
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
      'grpc.initial_reconnect_backoff_ms': BACKOFF_BASE_MS,
      'grpc.max_reconnect_backoff_ms': BACKOFF_MAX_MS,
      'grpc.use_local_subchannel_pool': 1,
    });
    new SyntheticEdge(name, client).open();
    // A gentle start (200 every 50 ms): the storm is measured separately, by restarting the server.
    if ((i + 1) % 200 === 0) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  process.stdout.write(`synthetic-edges: ${names.length} edges started\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`synthetic-edges: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
