import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Json } from '../../envoy/render.js';
import { Ledger } from '../cache/ledger.js';
import { CLOUD_KEY, SnapshotCache } from '../cache/snapshot-cache.js';
import type { TunnelNode } from '../model/node.js';
import { DEFAULT_SETTINGS } from '../model/settings.js';
import { translate } from '../translate/translate.js';
import { dumpProxy, resourcesOnly } from './dump.js';
import { pack } from '../../envoy/registry.js';
import { XdsType } from '../../envoy/xds-types.js';
import { resourceSet, translation } from '../protocol/testing.js';

const node = (name: string, address: string): TunnelNode => ({ name, addresses: [address], kubeletPort: 10250, role: 'edge', labels: {}, podCIDRs: [] });

function cloudDump(filter: Parameters<typeof dumpProxy>[4] = {}, cloudRoutes: 'inline' | 'vhds' = 'inline'): Record<string, Json[]> {
  const translation = translate([node('edge-a', '192.0.2.11'), node('edge-b', '192.0.2.12')], { ...DEFAULT_SETTINGS, podPorts: [8443], cloudRoutes });
  assert.ok(translation.ok);
  const cache = new SnapshotCache();
  cache.publish(translation);
  return resourcesOnly(dumpProxy(CLOUD_KEY, cache, new Ledger(), [], filter)) as Record<string, Json[]>;
}

describe('xds dump filters', () => {
  it('narrows a cloud dump to the routes of one node', () => {
    const all = cloudDump();
    assert.deepEqual(Object.keys(all), ['Secret', 'Cluster', 'Listener', 'RouteConfiguration']);
    const one = cloudDump({ node: 'edge-b' });
    assert.deepEqual(Object.keys(one), ['RouteConfiguration']);
    const hosts = (one.RouteConfiguration[0] as { virtualHosts: { name: string; domains: string[] }[] }).virtualHosts;
    assert.deepEqual(hosts.map((h) => h.name), ['node_edge-b']);
  });

  it('narrows a cloud dump to the virtual host of one node when routes go by VHDS', () => {
    const one = cloudDump({ node: 'edge-b' }, 'vhds');
    const hosts = one.VirtualHost as { name: string; routes: { name: string }[] }[] | undefined;
    assert.deepEqual(hosts?.map((h) => h.name), ['connect_routes/node_edge-b']);
    assert.deepEqual(hosts?.[0].routes.map((r) => r.name), ['edge-b']);
  });

  it('narrows by type and by name', () => {
    assert.deepEqual(Object.keys(cloudDump({ type: 'Cluster' })), ['Cluster']);
    const named = cloudDump({ name: 'edge_tunnels' });
    assert.deepEqual(Object.keys(named), ['Cluster']);
    assert.equal(named.Cluster.length, 1);
  });

  it('shows where secrets are, and redacts any inline key material', () => {
    assert.match(JSON.stringify(cloudDump({ type: 'Secret' })), /"filename":"\/etc\/edge-tunnel\/tls\/tls.key"/);
    const inline = pack('envoy.extensions.transport_sockets.tls.v3.Secret', { name: 'inline', tlsCertificate: { privateKey: { inlineString: 'THE KEY' } } });
    const cache = new SnapshotCache();
    cache.publish(translation(resourceSet({ [XdsType.secret]: [inline] })));
    const dumped = JSON.stringify(dumpProxy(CLOUD_KEY, cache, new Ledger()));
    assert.doesNotMatch(dumped, /THE KEY/);
    assert.match(dumped, /"inlineString":"<redacted>"/);
  });
});
