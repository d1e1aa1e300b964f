// Renders the Envoy bootstrap for an edge or a cloud proxy: only what cannot come over xDS is static
// (node identity, admin, the reverse-tunnel socket interface, the way to the xDS server); every
// listener, route and tunnel cluster arrives over ADS.

import type { DeepPartial } from '../envoy/generated/envoy/config/core/v3/base.js';
import type { Bootstrap } from '../envoy/generated/envoy/config/bootstrap/v3/bootstrap.js';
import { ApiConfigSource_ApiType, ApiVersion } from '../envoy/generated/envoy/config/core/v3/config_source.js';
import { anyToJson, toYaml, type Json } from '../envoy/render.js';
import { pack } from '../envoy/registry.js';
import { dnsSubdomainError } from '../xds/model/node.js';
import type { SocketAddress } from '../xds/model/settings.js';
import { adsConfigSource, seconds, fixedEndpointsCluster } from '../xds/translate/common.js';
import { certificateSecret, sanMatcher, trustSecret, upstreamTls } from '../xds/translate/tls.js';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { XDS_CLUSTER } from '../xds/translate/names.js';
import { CONCURRENCY_METADATA_KEY } from '../xds/protocol/identity.js';

export interface BootstrapOptions {
  /** Edge: the Kubernetes node name. Cloud: this replica's own id (e.g. the pod name). */
  readonly id: string;
  readonly xds: SocketAddress;
  readonly adminPort: number;
  /** Admin listens on loopback only: it can change Envoy's state and must never face a network. */
  readonly adminAddress?: string;
  /** The --concurrency Envoy will run with, declared to the xDS server so it can check the tunnel count. */
  readonly concurrency?: number;
  /** Mutual TLS to the xDS server; without it the connection is plaintext (insecure mode only). */
  readonly tls?: XdsClientTls;
  /**
   * Edge: Envoy's upstream half-close (EDGE_RUNTIME), on unless false. Only measurements of Envoy
   * 1.40's own CONNECT termination (`--edge-connect-termination envoy`, the lossy stock shape) turn it
   * off; the terminator needs it, and so will Envoy's own fixed terminator.
   */
  readonly upstreamHalfClose?: boolean;
  /**
   * The ADS flavour: incremental (delta, the default: a change sends only the resources that changed)
   * or State of the World (sotw: every resource of a changed type again; for xDS servers without delta).
   */
  readonly xdsApi?: XdsApi;
}

export type XdsApi = 'delta' | 'sotw';

export interface XdsClientTls {
  /** tls.crt + tls.key (this proxy's certificate) and ca.crt (the CA of the xDS server's certificate). */
  readonly dir: string;
  /** The name the xDS server's certificate must carry (DNS or IP SAN). */
  readonly serverName: string;
  /** Where the secret files from `xdsSecretFiles` live; Envoy reads the certificates through them. */
  readonly secretsDir: string;
}

export const XDS_CLIENT_SECRETS = { identity: 'xds_client_identity', serverCa: 'xds_server_ca' } as const;

function secretFile(tls: XdsClientTls, name: string): string {
  return join(tls.secretsDir, `${name}.sds.yaml`);
}

/**
 * The file-based SDS resources the bootstrap points at, by path: certificates named by file, so Envoy
 * reloads them when they change (Envoy rotates only certificates that reach it through SDS). Envoy
 * takes exactly one secret per file.
 */
export function xdsSecretFiles(tls: XdsClientTls): Map<string, string> {
  const secrets = [
    certificateSecret(XDS_CLIENT_SECRETS.identity, tls.dir),
    trustSecret(XDS_CLIENT_SECRETS.serverCa, tls.dir, 'ca.crt'),
  ];
  const names = [XDS_CLIENT_SECRETS.identity, XDS_CLIENT_SECRETS.serverCa];
  return new Map(secrets.map((secret, i) => [secretFile(tls, names[i]), toYaml({ resources: [anyToJson(secret)] })]));
}

/**
 * Edge reconnect tuning: with Envoy's defaults a lost tunnel comes back after 8-10 s; these bring it
 * to about a second, which is cheap next to the cost of kubectl failing meanwhile.
 */
const EDGE_MAINTAIN_INTERVAL_S = 1;
const MAX_XDS_MESSAGE_BYTES = 256 * 1024 * 1024;
const EDGE_MAX_RECONNECT_BACKOFF_S = 2;

function common(options: BootstrapOptions, cluster: 'edge' | 'cloud' | 'sidecar'): DeepPartial<Bootstrap> {
  const xdsCluster = fixedEndpointsCluster(XDS_CLUSTER, [options.xds], 2);
  const tls = options.tls;
  const transportSocket = tls && {
    ...upstreamTls({
      certificate: XDS_CLIENT_SECRETS.identity,
      trust: XDS_CLIENT_SECRETS.serverCa,
      requireSans: [sanMatcher(tls.serverName)],
      sni: isIP(tls.serverName) ? '' : tls.serverName,
      source: (name) => ({ pathConfigSource: { path: secretFile(tls, name) }, resourceApiVersion: ApiVersion.V3 }),
      // gRPC servers only speak HTTP/2 negotiated by ALPN.
      alpn: ['h2'],
    }),
  };
  return {
    node: {
      id: options.id,
      cluster,
      ...(options.concurrency !== undefined && { metadata: { [CONCURRENCY_METADATA_KEY]: options.concurrency } }),
    },
    admin: {
      address: { socketAddress: { address: options.adminAddress ?? '127.0.0.1', portValue: options.adminPort } },
    },
    dynamicResources: {
      adsConfig: {
        apiType: options.xdsApi === 'sotw' ? ApiConfigSource_ApiType.GRPC : ApiConfigSource_ApiType.DELTA_GRPC,
        transportApiVersion: ApiVersion.V3,
        grpcServices: [
          {
            envoyGrpc: {
              clusterName: XDS_CLUSTER,
              // One RouteConfiguration for a whole fleet is megabytes (3.3 MiB at 10,000 nodes).
              maxReceiveMessageLength: MAX_XDS_MESSAGE_BYTES,
              // Come back quickly after an xDS server restart; Envoy keeps serving its last config meanwhile.
              retryPolicy: { retryBackOff: { baseInterval: seconds(0.25), maxInterval: seconds(2) } },
            },
          },
        ],
        setNodeOnFirstMessageOnly: true,
      },
      ldsConfig: adsConfigSource(),
      cdsConfig: adsConfigSource(),
    },
    staticResources: {
      clusters: [
        {
          ...xdsCluster,
          transportSocket,
          typedExtensionProtocolOptions: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': pack(
              'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              { explicitHttpConfig: { http2ProtocolOptions: { connectionKeepalive: { interval: seconds(15), timeout: seconds(5) } } } },
            ),
          },
        },
      ],
    },
  };
}

/**
 * Lets the edge Envoy end a tunnelled stream with END_STREAM when its upstream (the connect-terminator)
 * finishes first, instead of resetting it and dropping what flow control still holds back. Edge only:
 * the cloud must keep resetting its upstream stream once the response ended, because its HTTP/1.1
 * CONNECT clients cannot be half-closed and would otherwise wait forever.
 */
export const EDGE_RUNTIME = { 'envoy.reloadable_features.allow_multiplexed_upstream_half_close': true } as const;

export function edgeBootstrap(options: BootstrapOptions): DeepPartial<Bootstrap> {
  const nameError = dnsSubdomainError(options.id);
  if (nameError) throw new Error(`node name "${options.id}" ${nameError}`);
  return {
    ...common(options, 'edge'),
    ...(options.upstreamHalfClose !== false && { layeredRuntime: { layers: [{ name: 'edge-tunnel', staticLayer: { ...EDGE_RUNTIME } }] } }),
    bootstrapExtensions: [
      {
        name: 'envoy.bootstrap.reverse_tunnel.downstream_socket_interface',
        typedConfig: pack(
          'envoy.extensions.bootstrap.reverse_tunnel.downstream_socket_interface.v3.DownstreamReverseConnectionSocketInterface',
          {
            statPrefix: 'downstream_reverse_connection',
            maintainInterval: seconds(EDGE_MAINTAIN_INTERVAL_S),
            maxReconnectBackoff: seconds(EDGE_MAX_RECONNECT_BACKOFF_S),
          },
        ),
      },
    ],
  };
}

export function cloudBootstrap(options: BootstrapOptions): DeepPartial<Bootstrap> {
  return {
    ...common(options, 'cloud'),
    bootstrapExtensions: [
      {
        name: 'envoy.bootstrap.reverse_tunnel.upstream_socket_interface',
        typedConfig: pack(
          'envoy.extensions.bootstrap.reverse_tunnel.upstream_socket_interface.v3.UpstreamReverseConnectionSocketInterface',
          { statPrefix: 'upstream_reverse_connection' },
        ),
      },
    ],
  };
}

/**
 * The sidecar beside a cloud client that cannot use a CONNECT proxy (metrics-server): connections the
 * pod's iptables rules redirect to it are carried over CONNECT to the cloud Envoy. It needs no reverse
 * tunnel extension; everything else comes over ADS.
 */
export function sidecarBootstrap(options: BootstrapOptions): DeepPartial<Bootstrap> {
  return common(options, 'sidecar');
}

/** The bootstrap as Envoy reads it with -c: YAML with every Any expanded. */
export function renderBootstrap(bootstrap: DeepPartial<Bootstrap>): string {
  const json = anyToJson(pack('envoy.config.bootstrap.v3.Bootstrap', bootstrap)) as { [key: string]: Json };
  delete json['@type'];
  return toYaml(json);
}
