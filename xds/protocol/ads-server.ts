// Binds ADS streams to gRPC: the AggregatedDiscoveryService over @grpc/grpc-js, State of the World
// (SotwStream) and incremental (DeltaStream). Everything the protocol decides lives in the streams;
// this file only moves messages and statuses.

import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  AggregatedDiscoveryServiceService,
  type AggregatedDiscoveryServiceServer,
} from '../../envoy/generated/envoy/service/discovery/v3/ads.js';
import { SotwStream } from './sotw-stream.js';
import { DeltaStream } from './delta-stream.js';
import type { StreamDeps, StreamIo } from './stream-base.js';
import { peerIdentityFromSans, type PeerIdentity } from './identity.js';

/** Large fleets mean large RouteConfigurations: gRPC's 4 MB default is far too small. */
const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

export const GRPC_SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  // Notice proxies that vanished without closing their stream (NAT drops, power loss at the edge).
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
};

/** What a stream of either flavour needs from its gRPC call. */
interface BoundStream<Request> {
  handle(request: Request): void;
  drained(): void;
  close(): void;
}

type Call<Request, Response> = grpc.ServerDuplexStream<Request, Response>;

/** Moves one call's messages to and from its stream, and ends the stream with the call. */
function bind<Request, Response>(
  call: Call<Request, Response>,
  id: number,
  deps: StreamDeps,
  open: (io: StreamIo<Response>, peer: PeerIdentity | 'none' | undefined) => BoundStream<Request>,
): void {
  const auth = call.getAuthContext();
  // On TLS connections the client certificate decides who the proxy may claim to be.
  const peer: PeerIdentity | 'none' | undefined =
    auth.transportSecurityType === 'ssl' ? (peerIdentityFromSans(auth.sslPeerCertificate?.subjectaltname) ?? 'none') : undefined;
  const stream = open(
    {
      send: (response) => call.write(response),
      fail: (message, reason) => call.emit('error', { code: reason === 'denied' ? grpc.status.PERMISSION_DENIED : grpc.status.INVALID_ARGUMENT, details: message }),
    },
    peer,
  );
  call.on('data', (request: Request) => {
    try {
      stream.handle(request);
    } catch (error) {
      // A bug in one stream must not take the control plane down with it.
      deps.logger.error({ stream: id, err: error }, 'discovery request failed');
      call.emit('error', { code: grpc.status.INTERNAL, details: 'internal error handling the request' });
      stream.close();
    }
  });
  call.on('end', () => {
    stream.close();
    call.end();
  });
  call.on('drain', () => stream.drained());
  call.on('error', () => stream.close());
  call.on('cancelled', () => stream.close());
  call.on('close', () => stream.close());
}

export function adsService(deps: StreamDeps): AggregatedDiscoveryServiceServer {
  let nextStreamId = 0;
  return {
    streamAggregatedResources(call) {
      const id = ++nextStreamId;
      bind(call, id, deps, (io, peer) => new SotwStream(id, deps, io, peer));
    },
    deltaAggregatedResources(call) {
      const id = ++nextStreamId;
      bind(call, id, deps, (io, peer) => new DeltaStream(id, deps, io, peer));
    },
  };
}

/**
 * grpc-js decodes requests before our handler sees them; a message that does not decode ends the
 * stream with INTERNAL there. Log and count it, so garbage on the ADS port is visible to operators.
 */
function observedDecoding(deps: StreamDeps): typeof AggregatedDiscoveryServiceService {
  const sotw = AggregatedDiscoveryServiceService.streamAggregatedResources;
  return {
    ...AggregatedDiscoveryServiceService,
    streamAggregatedResources: {
      ...sotw,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return sotw.requestDeserialize(bytes);
        } catch (error) {
          deps.metrics.rejectedRequests.inc({ reason: 'undecodable' });
          deps.logger.warn({ bytes: bytes.length, error: String(error) }, 'discovery request that does not decode as a DiscoveryRequest: stream ended');
          throw error;
        }
      },
    },
  };
}

/**
 * Mutual TLS for the ADS port from a directory of tls.crt, tls.key (the server's certificate) and ca.crt
 * (the CA of the proxies' client certificates). The files are re-read periodically, so rotating them
 * needs no restart; established streams keep their connection.
 */
export function serverTlsCredentials(dir: string, refreshIntervalMs = 5000): grpc.ServerCredentials {
  const provider = new grpc.experimental.FileWatcherCertificateProvider({
    certificateFile: join(dir, 'tls.crt'),
    privateKeyFile: join(dir, 'tls.key'),
    caCertificateFile: join(dir, 'ca.crt'),
    refreshIntervalMs,
  });
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, true);
}

export async function listenAds(
  deps: StreamDeps,
  address: string,
  credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure(),
): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server(GRPC_SERVER_OPTIONS);
  server.addService(observedDecoding(deps), adsService(deps));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return { server, port };
}
