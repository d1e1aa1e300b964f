// Two cloud Envoy replicas, each in a network namespace of its own (as pods are), and edges that dial
// both: every replica holds tunnels from every node, so either one serves any node, and losing one
// loses nothing but its own clients' open streams.

import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { waitFor } from './harness/index.js';
import { Topology, stepsWithLogs } from './topology.js';

describe('high availability: two cloud Envoy replicas, every edge tunnelled to both', { concurrency: false }, () => {
  let topology: Topology;
  const step = stepsWithLogs(() => topology?.processes.describeFailure());
  const nodes = ['node-a', 'node-b'];

  /** Nodes a replica holds tunnels for, summed over its worker threads. */
  const tunnelsHeld = async (replica: number): Promise<number> => {
    const stats = await topology.replicaAdmin(replica).stats().catch(() => new Map<string, number>());
    return [...stats].filter(([name]) => /^upstream_reverse_connection\.worker_\d+\.total_nodes$/.test(name)).reduce((sum, [, v]) => sum + v, 0);
  };

  before(async () => {
    topology = await Topology.start({ nodes, cloudReplicas: 2 });
  });
  after(async () => topology?.stop());

  step('every replica holds tunnels from every node on every worker, and routes to each node', async () => {
    for (const replica of [1, 2]) {
      await waitFor(`replica ${replica} holding every node on both workers`, async () => (await tunnelsHeld(replica)) === nodes.length * 2, { timeoutMs: 30_000 });
      for (const node of nodes) await topology.waitReachable(node, 10_000, node, replica);
    }
  });

  step('with one replica down the other serves every node; the restarted one is back within seconds', async (t) => {
    await topology.stopCloud(1);
    for (const node of nodes) assert.equal(await topology.reach(node, node, 2), `kubelet ${node}\n`, `${node} via replica 2`);
    const started = performance.now();
    await topology.startCloud(1);
    for (const node of nodes) await topology.waitReachable(node, 15_000, node, 1);
    t.diagnostic(`replica 1 restarted: every node reachable through it ${Math.round(performance.now() - started)} ms after its start`);
    for (const node of nodes) assert.equal(await topology.reach(node, node, 2), `kubelet ${node}\n`, 'replica 2 was never disturbed');
  });
});
