import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { cloudBootstrap, edgeBootstrap, renderBootstrap, sidecarBootstrap } from './bootstrap.js';
import { CAPTURE_CHAIN, captureRules } from './capture.js';

interface Rendered {
  node: { id: string; cluster: string; metadata?: { concurrency: number } };
  bootstrapExtensions?: { name: string; typedConfig: Record<string, unknown> }[];
  dynamicResources: { adsConfig: { apiType: string; grpcServices: { envoyGrpc: { clusterName: string } }[] } };
  staticResources: { clusters: { name: string; loadAssignment: unknown }[] };
  admin: { address: { socketAddress: { address: string; portValue: number } } };
  layeredRuntime?: { layers: { name: string; staticLayer: Record<string, unknown> }[] };
}

const HALF_CLOSE = 'envoy.reloadable_features.allow_multiplexed_upstream_half_close';

const options = { xds: { address: 'xds.example', port: 18000 }, adminPort: 19001 };

describe('agent-bootstrap', () => {
  it('renders an edge bootstrap: node identity, the initiator extension with fast reconnects, ADS only', () => {
    const b = parse(renderBootstrap(edgeBootstrap({ id: 'node-a', ...options, concurrency: 1 }))) as Rendered;
    assert.deepEqual(b.node, { id: 'node-a', cluster: 'edge', metadata: { concurrency: 1 } });
    assert.equal(b.bootstrapExtensions?.[0].name, 'envoy.bootstrap.reverse_tunnel.downstream_socket_interface');
    assert.equal(b.bootstrapExtensions?.[0].typedConfig.maintainInterval, '1s');
    assert.equal(b.bootstrapExtensions?.[0].typedConfig.maxReconnectBackoff, '2s');
    assert.equal(b.dynamicResources.adsConfig.apiType, 'DELTA_GRPC', 'incremental ADS by default');
    const sotw = parse(renderBootstrap(edgeBootstrap({ id: 'node-a', ...options, xdsApi: 'sotw' }))) as Rendered;
    assert.equal(sotw.dynamicResources.adsConfig.apiType, 'GRPC');
    assert.deepEqual(b.staticResources.clusters.map((c) => c.name), ['xds_server']);
    assert.deepEqual(b.admin.address.socketAddress, { address: '127.0.0.1', portValue: 19001 });
  });

  it('turns on upstream half-close at the edge only (the cloud must keep resetting for its HTTP/1.1 clients)', () => {
    const edge = parse(renderBootstrap(edgeBootstrap({ id: 'node-a', ...options }))) as Rendered;
    assert.deepEqual(edge.layeredRuntime?.layers, [{ name: 'edge-tunnel', staticLayer: { [HALF_CLOSE]: true } }]);
    const stock = parse(renderBootstrap(edgeBootstrap({ id: 'node-a', ...options, upstreamHalfClose: false }))) as Rendered;
    assert.equal(stock.layeredRuntime, undefined);
    const cloud = parse(renderBootstrap(cloudBootstrap({ id: 'cloud-1', ...options }))) as Rendered;
    assert.equal(cloud.layeredRuntime, undefined);
  });

  it('renders a cloud bootstrap with the responder extension', () => {
    const b = parse(renderBootstrap(cloudBootstrap({ id: 'cloud-1', ...options }))) as Rendered;
    assert.deepEqual(b.node, { id: 'cloud-1', cluster: 'cloud' });
    assert.equal(b.bootstrapExtensions?.[0].name, 'envoy.bootstrap.reverse_tunnel.upstream_socket_interface');
  });

  it('renders a sidecar bootstrap: its own role, no reverse-tunnel extension', () => {
    const b = parse(renderBootstrap(sidecarBootstrap({ id: 'metrics-server-0', ...options }))) as Rendered;
    assert.deepEqual(b.node, { id: 'metrics-server-0', cluster: 'sidecar' });
    assert.equal(b.bootstrapExtensions, undefined);
    assert.deepEqual(b.staticResources.clusters.map((c) => c.name), ['xds_server']);
  });

  it('captures only the given ports, never loopback or the sidecar\'s own connections, idempotently', () => {
    const rules = captureRules({ ports: [10250, 10255], capturePort: 15006, proxyUid: 101 }).map((args) => args.join(' '));
    assert.deepEqual(rules, [
      `-w -t nat -D OUTPUT -p tcp -j ${CAPTURE_CHAIN}`,
      `-w -t nat -N ${CAPTURE_CHAIN}`,
      `-w -t nat -F ${CAPTURE_CHAIN}`,
      `-w -t nat -A ${CAPTURE_CHAIN} -m owner --uid-owner 101 -j RETURN`,
      `-w -t nat -A ${CAPTURE_CHAIN} -d 127.0.0.0/8 -j RETURN`,
      `-w -t nat -A ${CAPTURE_CHAIN} -p tcp --dport 10250 -j REDIRECT --to-ports 15006`,
      `-w -t nat -A ${CAPTURE_CHAIN} -p tcp --dport 10255 -j REDIRECT --to-ports 15006`,
      `-w -t nat -A OUTPUT -p tcp -j ${CAPTURE_CHAIN}`,
    ]);
  });

  it('refuses an edge node name that cannot be a tunnel id', () => {
    assert.throws(() => edgeBootstrap({ id: 'Node:A', ...options }), /node name "Node:A" must be a DNS subdomain/);
  });
});
