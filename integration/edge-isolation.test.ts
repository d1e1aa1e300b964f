// Edges on hosts of their own, as in a real fleet: each edge's Envoy, connect-terminator and kubelet
// live in a network namespace of their own, and every kubelet listens on 10250. A CONNECT to a node
// reaches that node's kubelet and never another's, whatever port the two share (`make demo` runs this
// shape).

import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { Topology, stepsWithLogs } from './topology.js';

describe('edges in network namespaces of their own, every kubelet on 10250', { concurrency: false }, () => {
  let topology: Topology;
  const step = stepsWithLogs(() => topology?.processes.describeFailure());

  before(async () => {
    topology = await Topology.start({ nodes: ['node-a', 'node-b'], edgeNamespaces: true, kubeletPorts: { 'node-a': 10250, 'node-b': 10250 } });
    await topology.waitReachable('node-a', 30_000);
    await topology.waitReachable('node-b', 30_000);
  });
  after(async () => topology?.stop());

  step("CONNECT to each node's kubelet port, by name and by address, reaches that node's own kubelet", async () => {
    for (const node of ['node-a', 'node-b']) {
      for (const host of [node, topology.addressOf(node)]) {
        for (let i = 0; i < 4; i++) assert.equal(await topology.reach(node, host), `kubelet ${node}\n`, `${host}:10250`);
      }
    }
  });

  step('a port off the allowlist is refused at the cloud', async () => {
    const result = await topology.connect('node-b:10251');
    result.socket.destroy();
    assert.equal(result.status, 404);
  });
});
