// The walking skeleton end to end on loopback: real Envoys configured only by our xDS server, CONNECT
// sent the way kube-apiserver's egress dialer sends it, stand-in kubelets answering with their node name.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe } from 'node:test';
import { parse } from 'yaml';
import { blobChunks, blobSha256, httpsThroughTunnel, waitFor } from './harness/index.js';
import { Topology, stepsWithLogs } from './topology.js';

const ROOT = join(import.meta.dirname, '..');
const MiB = 1024 * 1024;

describe('edge-tunnel on loopback (xDS server, cloud Envoy with 2 workers, edge Envoys)', { concurrency: false }, () => {
  let topology: Topology;

  const step = stepsWithLogs(() => topology?.processes.describeFailure());

  const connect = (target: string) => topology.connect(target);

  before(async () => {
    // Cloud nodes refused rather than dialed directly: a node turned cloud here must answer 404 at
    // once (its TEST-NET address answers nowhere; cluster-egress.test.ts covers direct dialing).
    topology = await Topology.start({ nodes: ['node-a', 'node-b'], serveArgs: ['--cloud-destinations', 'refuse'] });
    await topology.addEdge('node-c');
  });
  after(async () => topology?.stop());

  step('CONNECT by node name and by address reaches that node, never another', async () => {
    // First convergence after start: generous, the timed claims are the later steps'.
    await topology.waitReachable('node-a', 30_000);
    await topology.waitReachable('node-b', 30_000);
    for (let i = 0; i < 5; i++) {
      for (const node of ['node-a', 'node-b']) {
        assert.equal(await topology.reach(node), `kubelet ${node}\n`);
        assert.equal(await topology.reach(node, topology.addressOf(node)), `kubelet ${node}\n`);
        assert.equal(await topology.reach(node, `${node}.edge.test`), `kubelet ${node}\n`);
        assert.equal(await topology.reach(node, topology.ipv6Of(node)), `kubelet ${node}\n`, 'CONNECT [IPv6]:port');
      }
    }
  });

  step('an unknown node or a port off the allowlist is refused within a second', async () => {
    for (const target of [`node-zz:${topology.kubeletPort('node-a')}`, 'node-a:9', `${topology.addressOf('node-a')}:22`, '203.0.113.9:10250']) {
      const result = await connect(target);
      result.socket.destroy();
      assert.equal(result.status, 404, `${target}: ${result.statusLine}`);
      assert.ok(result.elapsedMs < 1000, `${target} took ${result.elapsedMs} ms`);
    }
  });

  step('64 MiB cross the tunnel intact in both directions', async () => {
    const target = `node-a:${topology.kubeletPort('node-a')}`;
    const size = 64 * MiB;
    const up = await connect(target);
    assert.equal(up.status, 200);
    const upload = await httpsThroughTunnel(up.socket, { method: 'POST', path: '/sha256', body: blobChunks(size, 'up') });
    assert.equal(upload.body.toString().trim(), blobSha256(size, 'up'));
    const down = await connect(target);
    assert.equal(down.status, 200);
    const download = await httpsThroughTunnel(down.socket, { method: 'GET', path: `/blob?size=${size}&seed=down`, keepBody: false });
    assert.equal(download.bytes, size);
    assert.equal(download.sha256, blobSha256(size, 'down'));
  });

  step('removing node-b from the nodes file cuts it off within 2 s; adding node-c opens it within 2 s', async () => {
    await topology.startEdge('node-c');
    topology.writeNodes(['node-a', 'node-c']);
    await waitFor('node-b refused', async () => {
      const result = await connect(`node-b:${topology.kubeletPort('node-b')}`);
      result.socket.destroy();
      return result.status === 404;
    }, { timeoutMs: 2000 });
    await topology.waitReachable('node-c', 2000);
    assert.equal(await topology.reach('node-a'), 'kubelet node-a\n');
    topology.writeNodes(['node-a', 'node-b', 'node-c']);
    await topology.waitReachable('node-b', 5000);
  });

  step('a node flipping between edge and cloud many times ends in its last state', async () => {
    for (let i = 0; i < 20; i++) topology.writeNodes(['node-a', 'node-b', 'node-c'], i % 2 === 0 ? ['node-b'] : []);
    topology.writeNodes(['node-a', 'node-b', 'node-c'], ['node-b']);
    await waitFor('node-b refused as a cloud node', async () => {
      const result = await connect(`node-b:${topology.kubeletPort('node-b')}`);
      result.socket.destroy();
      return result.status === 404;
    }, { timeoutMs: 3000 });
    topology.writeNodes(['node-a', 'node-b', 'node-c']);
    await topology.waitReachable('node-b', 3000);
    assert.equal(await topology.reach('node-a'), 'kubelet node-a\n');
  });

  step('a restarted edge Envoy serves its node again, nothing else restarted', async () => {
    await topology.stopEdge('node-a');
    const down = await connect(`node-a:${topology.kubeletPort('node-a')}`);
    down.socket.destroy();
    assert.equal(down.status, 503, 'a known node without a tunnel fails at once with 503');
    await topology.startEdge('node-a');
    await topology.waitReachable('node-a', 5000);
  });

  step('after a cloud Envoy restart every node is reachable within 5 s', async () => {
    await topology.stopCloud();
    await topology.startCloud();
    const deadline = Date.now() + 5000;
    for (const node of ['node-a', 'node-b', 'node-c']) await topology.waitReachable(node, Math.max(deadline - Date.now(), 1));
  });

  step('xds dump shows what each proxy holds and which version it ACKed', async () => {
    const run = promisify(execFile);
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'xds/cli/main.ts', 'dump', '--role', 'edge', '--node', 'node-a', '--admin', topology.xdsAdminUrl], { cwd: ROOT });
    const dump = parse(stdout) as {
      resources: Record<string, { version: string; items: { name: string }[] }>;
      streams: { types: Record<string, { status: string; ackedVersion: string }> }[];
    };
    assert.deepEqual(dump.resources.Listener.items.map((i) => i.name), ['reverse_tunnel']);
    assert.ok(dump.resources.Cluster.items.some((i) => i.name === 'cloud_tunnel'));
    assert.equal(dump.streams.length, 1);
    for (const type of ['Cluster', 'Listener', 'RouteConfiguration']) {
      assert.equal(dump.streams[0].types[type].status, 'ACKED', type);
      assert.equal(dump.streams[0].types[type].ackedVersion, dump.resources[type].version, type);
    }
    const again = await run(process.execPath, ['--import', 'tsx', 'xds/cli/main.ts', 'dump', '--role', 'edge', '--node', 'node-a', '--admin', topology.xdsAdminUrl], { cwd: ROOT });
    assert.equal(again.stdout, stdout, 'two dumps of an unchanged server are identical');
  });

  step('xds dump narrows for an audit: one node\'s cloud routes, a type, the golden shape; an unknown node is an error', async () => {
    const dump = async (query: string): Promise<{ status: number; body: string }> => {
      const response = await fetch(`${topology.xdsAdminUrl}/dump?${query}`);
      return { status: response.status, body: await response.text() };
    };
    // Only the routes that reach node-a, and only the route configuration.
    const own = parse((await dump('role=cloud&node=node-a&type=RouteConfiguration')).body) as { resources: Record<string, { items: { resource: { virtualHosts: { name: string }[] } }[] }> };
    assert.deepEqual(Object.keys(own.resources), ['RouteConfiguration']);
    assert.deepEqual(own.resources.RouteConfiguration.items[0].resource.virtualHosts.map((h) => h.name), ['node_node-a']);
    // The golden files' shape: {Type: [resource]}.
    const golden = parse((await dump('role=edge&node=node-a&format=resources&type=Listener')).body) as Record<string, { name: string }[]>;
    assert.deepEqual(Object.keys(golden), ['Listener']);
    assert.deepEqual(golden.Listener.map((l) => l.name), ['reverse_tunnel']);
    const unknown = await dump('role=edge&node=no-such-node');
    assert.equal(unknown.status, 404);
    assert.match(unknown.body, /no edge node "no-such-node" is served/);
  });

  step('xds status lists every connected proxy, and flags an edge node whose proxy is gone (exit 3)', async () => {
    const run = promisify(execFile);
    const status = async (): Promise<{ code: number; out: { proxies: { role: string; proxy: string; envoyVersion?: string; health: string }[]; problems: { kind: string; where: string }[] } }> => {
      const args = ['--import', 'tsx', 'xds/cli/main.ts', 'status', '-o', 'json', '--admin', topology.xdsAdminUrl];
      const { code, stdout } = await run(process.execPath, args, { cwd: ROOT }).then(
        (r) => ({ code: 0, stdout: r.stdout }),
        (e: { code?: number; stdout?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '' }),
      );
      return { code, out: JSON.parse(stdout) as Awaited<ReturnType<typeof status>>['out'] };
    };
    const healthy = await status();
    assert.equal(healthy.code, 0, JSON.stringify(healthy.out.problems));
    assert.deepEqual(healthy.out.proxies.map((p) => `${p.role}/${p.proxy}`), ['cloud/cloud-1', 'edge/node-a', 'edge/node-b', 'edge/node-c']);
    assert.ok(healthy.out.proxies.every((p) => p.envoyVersion === '1.40.0' && p.health === 'ok'));
    await topology.stopEdge('node-b');
    try {
      const missing = await waitFor('node-b flagged', async () => {
        const result = await status();
        return result.code === 3 ? result : undefined;
      }, { timeoutMs: 10_000 });
      assert.deepEqual(missing.out.problems.map((p) => [p.kind, p.where]), [['missing', 'node-b']]);
    } finally {
      await topology.startEdge('node-b');
    }
    await waitFor('node-b back', async () => (await status()).code === 0, { timeoutMs: 10_000 });
  });

  step('while the xDS server is down the Envoys keep serving; after its restart they resync', async () => {
    await topology.stopXds();
    for (const node of ['node-a', 'node-b', 'node-c']) assert.equal(await topology.reach(node), `kubelet ${node}\n`);
    topology.writeNodes(['node-a', 'node-b']);
    await topology.startXds();
    await waitFor('node-c removed after the resync', async () => {
      const result = await connect(`node-c:${topology.kubeletPort('node-c')}`);
      result.socket.destroy();
      return result.status === 404;
    }, { timeoutMs: 5000 });
    assert.equal(await topology.reach('node-a'), 'kubelet node-a\n');
  });
});
