// The security model against real processes: tunnels bound to node certificates, a CONNECT listener
// that only named cloud clients pass, xDS that serves a proxy only what its certificate names, and an
// edge that enforces its own port allowlist whatever the cloud sends.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { bundlePaths, loadBundleAuthority } from '../certs/bundle.js';
import { createAuthority, issue } from '../certs/issue.js';
import { AggregatedDiscoveryServiceClient } from '../envoy/generated/envoy/service/discovery/v3/ads.js';
import { DiscoveryRequest, type DiscoveryResponse } from '../envoy/generated/envoy/service/discovery/v3/discovery.js';
import { XdsType } from '../envoy/xds-types.js';
import { freePort, openConnect, startEnvoy, startStandInKubelet, waitFor, type EnvoyInstance } from './harness/index.js';
import { Topology, stepsWithLogs } from './topology.js';

describe('security: mutual TLS on every hop, never an open proxy', { concurrency: false }, () => {
  let topology: Topology;
  let paths: ReturnType<typeof bundlePaths>;

  const step = stepsWithLogs(() => topology?.processes.describeFailure());

  before(async () => {
    topology = await Topology.start({ nodes: ['node-a', 'node-b'] });
    paths = bundlePaths(topology.certs);
    await topology.waitReachable('node-a', 30_000);
    await topology.waitReachable('node-b', 30_000);
  });
  after(async () => topology?.stop());

  /** A CONNECT attempt with the given client TLS: the status, or the error that ended it. */
  async function connectWith(tls: Parameters<Topology['connect']>[1]): Promise<number | string> {
    try {
      const result = await topology.connect(`node-a:${topology.kubeletPort('node-a')}`, tls);
      result.socket.destroy();
      return result.status;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }

  step('the CONNECT listener refuses clients without a certificate from the client CA', async () => {
    const ca = readFileSync(paths.ca);
    assert.equal(await connectWith(topology.clientTls()), 200, 'the demo client certificate is accepted');
    const stranger = await createAuthority('some other CA');
    const strangerCert = await issue(stranger, { commonName: 'intruder', usage: 'client' });
    const clientCa = await loadBundleAuthority(topology.certs, 'clientCa');
    const expired = await issue(clientCa, {
      commonName: 'expired client',
      usage: 'client',
      notBefore: new Date(Date.now() - 3 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    const edgeCert = { cert: readFileSync(join(paths.edgeDir('node-a'), 'tls.crt')), key: readFileSync(join(paths.edgeDir('node-a'), 'tls.key')) };
    for (const [what, tls] of [
      ['no client certificate', { ca }],
      ['a certificate from an unknown CA', { ca, cert: strangerCert.cert, key: strangerCert.key }],
      ['an expired certificate from the client CA', { ca, cert: expired.cert, key: expired.key }],
      ["an edge node's certificate (edge CA, not client CA)", { ca, ...edgeCert }],
    ] as const) {
      const outcome = await connectWith(tls);
      assert.equal(typeof outcome, 'string', `${what}: expected a refused TLS handshake, got HTTP ${outcome}`);
    }
    const plaintext = await openConnect({ proxyHost: '127.0.0.1', proxyPort: topology.connectPort, target: `node-a:${topology.kubeletPort('node-a')}` }).then(
      (result) => (result.socket.destroy(), `HTTP ${result.status}`),
      () => 'refused',
    );
    assert.equal(plaintext, 'refused', 'plaintext CONNECT is refused');
  });

  step('the CONNECT listener answers anything but CONNECT with 405', async () => {
    const response = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: topology.connectPort, path: '/', method: 'GET', ...topology.clientTls() }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(response.status, 405);
    assert.match(response.body, /only CONNECT/);
  });

  /** Opens an ADS stream with the given certificate and claimed node; resolves with what came back. */
  function askXds(certDir: string | undefined, node: { id: string; cluster: string }): Promise<{ responses: DiscoveryResponse[]; error?: grpc.ServiceError }> {
    const ca = readFileSync(paths.ca);
    const credentials = certDir
      ? grpc.credentials.createSsl(ca, readFileSync(join(certDir, 'tls.key')), readFileSync(join(certDir, 'tls.crt')))
      : grpc.credentials.createSsl(ca);
    const client = new AggregatedDiscoveryServiceClient(`127.0.0.1:${topology.xdsPort}`, credentials);
    const responses: DiscoveryResponse[] = [];
    return new Promise((resolve) => {
      const call = client.streamAggregatedResources();
      const done = (error?: grpc.ServiceError): void => {
        clearTimeout(timer);
        call.cancel();
        client.close();
        resolve({ responses, error });
      };
      const timer = setTimeout(() => done(), 3000);
      call.on('data', (response: DiscoveryResponse) => {
        responses.push(response);
        done();
      });
      call.on('error', (error: grpc.ServiceError) => done(error));
      call.write(DiscoveryRequest.fromPartial({ node, typeUrl: XdsType.listener }));
    });
  }

  step('xDS serves a proxy only the node its certificate names', async () => {
    const own = await askXds(paths.edgeDir('node-a'), { id: 'node-a', cluster: 'edge' });
    assert.equal(own.error, undefined);
    assert.equal(own.responses[0]?.resources.length, 1, "node-a's certificate gets node-a's listener");

    const impostor = await askXds(paths.edgeDir('node-a'), { id: 'node-b', cluster: 'edge' });
    assert.deepEqual(impostor.responses, [], 'nothing is sent to a proxy claiming another node');
    assert.equal(impostor.error?.code, grpc.status.PERMISSION_DENIED);
    assert.match(impostor.error?.details ?? '', /names edge "node-a" but the request claims edge "node-b"/);

    const cloudAsEdge = await askXds(paths.cloudDir, { id: 'node-a', cluster: 'edge' });
    assert.equal(cloudAsEdge.error?.code, grpc.status.PERMISSION_DENIED);
    assert.deepEqual(cloudAsEdge.responses, []);

    const anonymous = await askXds(undefined, { id: 'node-a', cluster: 'edge' });
    assert.deepEqual(anonymous.responses, [], 'no client certificate, no configuration');
    assert.ok(anonymous.error, 'the TLS handshake fails without a client certificate');
  });

  step("an edge holding node-a's certificate cannot serve as node-b; the attempt is counted", async () => {
    await topology.stopEdge('node-b');
    const decoy = await startStandInKubelet({ node: 'impostor' });
    const adminPort = await freePort();
    const configPath = join(topology.dir, 'impostor.yaml');
    writeFileSync(configPath, impostorBootstrap({ adminPort, tunnelPort: topology.tunnelPort, decoyPort: decoy.port, certDir: paths.edgeDir('node-a'), caFile: paths.ca }));
    let impostor: EnvoyInstance | undefined;
    try {
      impostor = await startEnvoy(topology.processes, { name: 'impostor', configPath, baseId: topology.takeBaseId(), concurrency: 1, adminPort });
      await impostor.waitReady();
      const counter = await waitFor('the cloud counting a refused tunnel handshake', async () => {
        const stats = await topology.cloudAdmin.stats();
        const entry = [...stats].find(([name, value]) => name.includes('validation_failed') && value > 0);
        return entry?.[0];
      }, { timeoutMs: 10_000 });
      assert.match(counter, /reverse_tunnel/);
      const result = await topology.connect(`node-b:${topology.kubeletPort('node-b')}`);
      result.socket.destroy();
      assert.equal(result.status, 503, 'node-b has no tunnel: the impostor was not accepted as node-b');
      // The cloud's tunnel audit log names the certificate and the claim it failed (Envoy flushes
      // access logs on its own schedule, so wait for the line).
      const logFile = topology.processes.handles.find((h) => h.name === 'cloud-envoy')?.logFile ?? '';
      const refusedLine = await waitFor('the refused handshake in the tunnel audit log', () =>
        readFileSync(logFile, 'utf8').split('\n').find((line) => line.includes('"validation_result":"validation_failed"')),
      );
      assert.match(refusedLine, /"peer_dns_san":"node-a"/);
      assert.match(refusedLine, /"node_id":"node-b"/);
    } finally {
      await impostor?.process.stop();
      await decoy.close();
      await topology.startEdge('node-b');
    }
    await topology.waitReachable('node-b', 10_000);
  });

  step('the edge refuses ports off its allowlist even when the cloud forwards them', async () => {
    // A cloud that would forward anything to node-a: a stand-in for a compromised or misconfigured cloud.
    await topology.stopCloud();
    const adminPort = await freePort();
    const connectPort = await freePort();
    const configPath = join(topology.dir, 'permissive-cloud.yaml');
    writeFileSync(configPath, permissiveCloudBootstrap({ adminPort, tunnelPort: topology.tunnelPort, connectPort, certDir: paths.cloudDir }));
    let rogue: EnvoyInstance | undefined;
    try {
      rogue = await startEnvoy(topology.processes, { name: 'permissive-cloud', configPath, baseId: topology.takeBaseId(), concurrency: 1, adminPort });
      await rogue.waitReady();
      const through = async (port: number): Promise<{ status: number; body: string }> => {
        const result = await openConnect({ proxyHost: '127.0.0.1', proxyPort: connectPort, target: `node-a:${port}` });
        const body = await new Promise<string>((resolve) => {
          let text = '';
          result.socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
          result.socket.on('close', () => resolve(text));
          setTimeout(() => result.socket.destroy(), 500);
        });
        return { status: result.status, body };
      };
      await waitFor('node-a tunnelled to the permissive cloud', async () => (await through(topology.kubeletPort('node-a'))).status === 200, { timeoutMs: 10_000 });
      // Something listens on this loopback port of node-a's host, but it is not allowlisted.
      const refused = await through(Number(new URL(topology.xdsAdminUrl).port));
      assert.equal(refused.status, 403, 'the edge refuses a port off its allowlist');
    } finally {
      await rogue?.process.stop();
      await topology.startCloud();
    }
    await topology.waitReachable('node-a', 10_000);
  });
});

function impostorBootstrap(o: { adminPort: number; tunnelPort: number; decoyPort: number; certDir: string; caFile: string }): string {
  return `
node: {id: node-b, cluster: edge}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: ${o.adminPort}}}}
bootstrap_extensions:
- name: envoy.bootstrap.reverse_tunnel.downstream_socket_interface
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.downstream_socket_interface.v3.DownstreamReverseConnectionSocketInterface
    stat_prefix: downstream_reverse_connection
    maintain_interval: 1s
    max_reconnect_backoff: 1s
static_resources:
  listeners:
  - name: reverse_tunnel
    listener_filters_timeout: 0s
    address: {socket_address: {address: "rc://node-b:edge:default@cloud_tunnel:2", port_value: 0, resolver_name: envoy.resolvers.reverse_connection}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: impostor
          codec_type: HTTP2
          http2_protocol_options: {allow_connect: true}
          upgrade_configs: [{upgrade_type: CONNECT}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {connect_matcher: {}}
                route: {cluster: decoy, timeout: 0s, upgrade_configs: [{upgrade_type: CONNECT, connect_config: {}}]}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: cloud_tunnel
    type: STATIC
    connect_timeout: 2s
    load_assignment: {cluster_name: cloud_tunnel, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: ${o.tunnelPort}}}}}]}]}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          tls_certificates: [{certificate_chain: {filename: ${o.certDir}/tls.crt}, private_key: {filename: ${o.certDir}/tls.key}}]
          validation_context: {trusted_ca: {filename: ${o.caFile}}}
  - name: decoy
    type: STATIC
    connect_timeout: 2s
    load_assignment: {cluster_name: decoy, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: ${o.decoyPort}}}}}]}]}
`;
}

function permissiveCloudBootstrap(o: { adminPort: number; tunnelPort: number; connectPort: number; certDir: string }): string {
  return `
node: {id: permissive-cloud, cluster: cloud}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: ${o.adminPort}}}}
bootstrap_extensions:
- name: envoy.bootstrap.reverse_tunnel.upstream_socket_interface
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.bootstrap.reverse_tunnel.upstream_socket_interface.v3.UpstreamReverseConnectionSocketInterface
    stat_prefix: upstream_reverse_connection
static_resources:
  listeners:
  - name: tunnel_handshake
    address: {socket_address: {address: 127.0.0.1, port_value: ${o.tunnelPort}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates: [{certificate_chain: {filename: ${o.certDir}/tls.crt}, private_key: {filename: ${o.certDir}/tls.key}}]
            validation_context: {trusted_ca: {filename: ${o.certDir}/ca.crt}}
      filters:
      - name: envoy.filters.network.reverse_tunnel
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.reverse_tunnel.v3.ReverseTunnel
          ping_interval: 2s
  - name: forward_anything
    address: {socket_address: {address: 127.0.0.1, port_value: ${o.connectPort}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: forward_anything
          upgrade_configs: [{upgrade_type: CONNECT}]
          route_config:
            virtual_hosts:
            - name: everything_to_node_a
              domains: ["*"]
              routes:
              - match: {connect_matcher: {}}
                route: {cluster: edge_tunnels, timeout: 0s}
                typed_per_filter_config:
                  envoy.filters.http.header_mutation:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute
                    mutations: {request_mutations: [{append: {header: {key: x-tunnel-node, value: node-a}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}]}
          http_filters:
          - name: envoy.filters.http.header_mutation
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation, mutations: {}}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: edge_tunnels
    connect_timeout: 5s
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.reverse_connection
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.reverse_connection.v3.ReverseConnectionClusterConfig
        cleanup_interval: 60s
        host_id_format: "%REQ(x-tunnel-node)%"
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
`;
}
