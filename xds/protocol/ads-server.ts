// Binds SotW streams to gRPC: the AggregatedDiscoveryService over @grpc/grpc-js. Everything the
// protocol decides lives in SotwStream; this file only moves messages and statuses.

import * as grpc from '@grpc/grpc-js';
import {
  AggregatedDiscoveryServiceService,
  type AggregatedDiscoveryServiceServer,
} from '../../envoy/generated/envoy/service/discovery/v3/ads.js';
import { SotwStream, type StreamDeps } from './sotw-stream.js';

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

export function adsService(deps: StreamDeps): AggregatedDiscoveryServiceServer {
  let nextStreamId = 0;
  return {
    streamAggregatedResources(call) {
      const id = ++nextStreamId;
      const stream = new SotwStream(id, deps, {
        send: (response) => call.write(response),
        fail: (message) => call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: message }),
      });
      call.on('data', (request) => {
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
      call.on('error', () => stream.close());
      call.on('cancelled', () => stream.close());
      call.on('close', () => stream.close());
    },
    deltaAggregatedResources(call) {
      call.emit('error', {
        code: grpc.status.UNIMPLEMENTED,
        details: 'Delta xDS is not served yet: configure the proxy with api_type GRPC (State of the World)',
      });
    },
  };
}

export async function listenAds(
  deps: StreamDeps,
  address: string,
  credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure(),
): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server(GRPC_SERVER_OPTIONS);
  server.addService(AggregatedDiscoveryServiceService, adsService(deps));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return { server, port };
}
