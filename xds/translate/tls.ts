// TLS pieces: Secrets that point Envoy at certificate files on its own host (so the xDS server never
// holds a key and Envoy reloads the files when they change), and the TLS contexts that use them.

import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Any } from '../../envoy/generated/google/protobuf/any.js';
import type { DeepPartial } from '../../envoy/generated/envoy/config/core/v3/base.js';
import type { ConfigSource } from '../../envoy/generated/envoy/config/core/v3/config_source.js';
import type { TransportSocket } from '../../envoy/generated/envoy/config/core/v3/base.js';
import type { CommonTlsContext } from '../../envoy/generated/envoy/extensions/transport_sockets/tls/v3/tls.js';
import type { SubjectAltNameMatcher } from '../../envoy/generated/envoy/extensions/transport_sockets/tls/v3/common.js';
import { SubjectAltNameMatcher_SanType } from '../../envoy/generated/envoy/extensions/transport_sockets/tls/v3/common.js';
import { pack } from '../../envoy/registry.js';
import type { TlsSettings } from '../model/settings.js';
import { adsConfigSource } from './common.js';

export const SECRETS = {
  cloudIdentity: 'cloud_identity',
  edgeNodeCa: 'edge_node_ca',
  connectClientCa: 'connect_client_ca',
  edgeIdentity: 'edge_identity',
  cloudCa: 'cloud_ca',
  sidecarIdentity: 'sidecar_identity',
} as const;

/** The URI SAN prefix every edge node certificate carries (spiffe://edge-tunnel/edge/<node>). */
export const EDGE_IDENTITY_URI_PREFIX = 'spiffe://edge-tunnel/edge/';

export function edgeTlsDir(tls: TlsSettings, node: string): string {
  return tls.edgeDir.replaceAll('{node}', node);
}

export function certificateSecret(name: string, dir: string): Any {
  return pack('envoy.extensions.transport_sockets.tls.v3.Secret', {
    name,
    tlsCertificate: {
      certificateChain: { filename: join(dir, 'tls.crt') },
      privateKey: { filename: join(dir, 'tls.key') },
      watchedDirectory: { path: dir },
    },
  });
}

export function trustSecret(name: string, dir: string, file: string): Any {
  return pack('envoy.extensions.transport_sockets.tls.v3.Secret', {
    name,
    validationContext: { trustedCa: { filename: join(dir, file) }, watchedDirectory: { path: dir } },
  });
}

export function sanMatcher(name: string): DeepPartial<SubjectAltNameMatcher> {
  return {
    sanType: isIP(name) ? SubjectAltNameMatcher_SanType.IP_ADDRESS : SubjectAltNameMatcher_SanType.DNS,
    matcher: { exact: name },
  };
}

export interface CommonTlsOptions {
  readonly certificate: string;
  readonly trust: string;
  readonly requireSans?: readonly DeepPartial<SubjectAltNameMatcher>[];
  /** Where each named secret comes from: ADS by default, a local file for the bootstrap's xDS connection. */
  readonly source?: (secretName: string) => DeepPartial<ConfigSource>;
  readonly alpn?: readonly string[];
}

export function commonTlsContext(options: CommonTlsOptions): DeepPartial<CommonTlsContext> {
  const sdsConfig = options.source ?? adsConfigSource;
  return {
    tlsCertificateSdsSecretConfigs: [{ name: options.certificate, sdsConfig: sdsConfig(options.certificate) }],
    combinedValidationContext: {
      defaultValidationContext: { matchTypedSubjectAltNames: [...(options.requireSans ?? [])] },
      validationContextSdsSecretConfig: { name: options.trust, sdsConfig: sdsConfig(options.trust) },
    },
    alpnProtocols: [...(options.alpn ?? [])],
  };
}

/** Server side: a client certificate signed by the trusted CA is required, or the handshake fails. */
export function downstreamTls(options: CommonTlsOptions): DeepPartial<TransportSocket> {
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: pack('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', {
      requireClientCertificate: true,
      commonTlsContext: commonTlsContext(options),
    }),
  };
}

/**
 * A proxy dialing the cloud Envoy (an edge to its tunnel listener, a sidecar to its CONNECT listener):
 * presents `certificate`, and requires the cloud's certificate, from the CA in `cloud_ca`, to carry the
 * configured cloud name, which it also sends as SNI (not for an IP). Plaintext in insecure mode.
 */
export function toCloudTls(tls: TlsSettings | undefined, certificate: string): DeepPartial<TransportSocket> | undefined {
  if (!tls) return undefined;
  return upstreamTls({
    certificate,
    trust: SECRETS.cloudCa,
    requireSans: [sanMatcher(tls.cloudServerName)],
    sni: isIP(tls.cloudServerName) ? '' : tls.cloudServerName,
  });
}

export function upstreamTls(options: CommonTlsOptions & { readonly sni: string }): DeepPartial<TransportSocket> {
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: pack('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', {
      sni: options.sni,
      commonTlsContext: commonTlsContext(options),
    }),
  };
}
