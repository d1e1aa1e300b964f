// VHDS with real Envoys (`xds serve --cloud-routes vhds`, incremental ADS): each edge node's CONNECT
// virtual host is a resource of its own, so a node added, changed or removed sends the cloud Envoy that
// one virtual host, never the RouteConfiguration again, and every node stays reachable throughout.

import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { parse } from 'yaml';
import { waitFor } from './harness/index.js';
import { Topology, stepsWithLogs } from './topology.js';

interface TypeLedger {
  status: string;
  sentVersion?: string;
}

describe('VHDS: one virtual host per edge node, sent alone (real Envoys, incremental ADS)', { concurrency: false }, () => {
  let topology: Topology;
  const step = stepsWithLogs(() => topology?.processes.describeFailure());

  /** What the cloud Envoy's stream was sent, per type. */
  const cloudLedger = async (): Promise<Record<string, TypeLedger>> => {
    const dump = parse(await (await fetch(`${topology.xdsAdminUrl}/dump?role=cloud`)).text()) as { streams: { types: Record<string, TypeLedger> }[] };
    assert.equal(dump.streams.length, 1, 'one cloud stream');
    return dump.streams[0].types;
  };

  before(async () => {
    topology = await Topology.start({ nodes: ['node-a', 'node-b'], serveArgs: ['--cloud-routes', 'vhds'] });
    await topology.waitReachable('node-a', 30_000);
    await topology.waitReachable('node-b', 30_000);
  });
  after(async () => topology?.stop());

  step('the cloud Envoy ACKed the routes and one virtual host per node over VHDS', async () => {
    const types = await waitFor('RDS and VHDS ACKed', async () => {
      const t = await cloudLedger();
      return t.RouteConfiguration?.status === 'ACKED' && t.VirtualHost?.status === 'ACKED' ? t : undefined;
    }, { timeoutMs: 10_000 });
    assert.ok(types.VirtualHost);
    const hosts = parse(await (await fetch(`${topology.xdsAdminUrl}/dump?role=cloud&type=VirtualHost&format=resources`)).text()) as { VirtualHost: { name: string }[] };
    assert.deepEqual(hosts.VirtualHost.map((h) => h.name).sort(), ['connect_routes/node_node-a', 'connect_routes/node_node-b']);
  });

  /** Discovery responses sent so far, by type (every stream; the edges' have no VirtualHost). */
  const responses = async (type: string): Promise<number> => {
    const metrics = await (await fetch(`${topology.xdsAdminUrl}/metrics`)).text();
    return Number(new RegExp(`^xds_responses_total\\{type="${type}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? NaN);
  };

  step('a node added and one removed: the virtual hosts change, the RouteConfiguration is not sent again', async () => {
    const before = await cloudLedger();
    const [routesBefore, hostsBefore] = [await responses('RouteConfiguration'), await responses('VirtualHost')];
    await topology.addEdge('node-c');
    topology.writeNodes(['node-a', 'node-c']);
    // node-c's Envoy starts once the server serves node-c, so it is sent its routes once.
    await waitFor('node-c served', async () => (await fetch(`${topology.xdsAdminUrl}/dump?role=edge&node=node-c`)).ok, { timeoutMs: 10_000 });
    await topology.startEdge('node-c');
    await topology.waitReachable('node-c', 30_000);
    await waitFor('node-b refused', async () => (await topology.reach('node-b')) === undefined, { timeoutMs: 10_000 });
    assert.equal(await topology.reach('node-a'), 'kubelet node-a\n');
    const after = await cloudLedger();
    // Two RouteConfiguration responses, neither to the cloud: node-c's own local routes, and node-b's
    // edge told its routes are gone (delta removals). The cloud's was not sent again.
    assert.equal(after.RouteConfiguration.sentVersion, before.RouteConfiguration.sentVersion);
    assert.equal(await responses('RouteConfiguration'), routesBefore + 2);
    assert.ok((await responses('VirtualHost')) > hostsBefore, 'virtual hosts sent');
    assert.notEqual(after.VirtualHost.sentVersion, before.VirtualHost.sentVersion);
    assert.equal(after.VirtualHost.status, 'ACKED');
  });
});
