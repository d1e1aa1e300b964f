// What the CONNECT proxy reaches besides edge kubelets, against real Envoys: pod IPs in an edge node's
// pod CIDR (kube-apiserver's pod and service proxy) down its tunnel, and the cluster's cloud
// destinations (a Service CIDR, a cloud node) dialed directly. All bounded: edge pods on allowlisted
// pod ports only, cloud destinations only inside the cluster's ranges, nothing else.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { freePort, httpsThroughTunnel, startStandInKubelet, type StandInKubelet } from './harness/index.js';
import { Topology, stepsWithLogs } from './topology.js';

describe('pod CIDR and direct routes through real Envoys', { concurrency: false }, () => {
  let topology: Topology;
  let pod: StandInKubelet;
  let cloudNode: StandInKubelet;
  let otherPod: StandInKubelet;
  let service: StandInKubelet;
  let podPort: number;
  const step = stepsWithLogs(() => topology?.processes.describeFailure());

  // node-a's pods live in 127.0.101.0/24 (loopback, so the edge Envoy can dial them on this host).
  const POD_IP = '127.0.101.7';
  // A Service ClusterIP in the range given by --service-cidrs (kube-proxy's part is played by listening there).
  const SERVICE_IP = '127.0.104.9';

  before(async () => {
    podPort = await freePort(POD_IP);
    pod = await startStandInKubelet({ node: 'pod-on-node-a', host: POD_IP, port: podPort });
    otherPod = await startStandInKubelet({ node: 'pod-elsewhere', host: '127.0.102.7', port: podPort });
    cloudNode = await startStandInKubelet({ node: 'cloud-1' });
    service = await startStandInKubelet({ node: 'a-service', host: SERVICE_IP });
    topology = await Topology.start({
      nodes: ['node-a', 'node-b'],
      serveArgs: ['--pod-ports', String(podPort), '--service-cidrs', '127.0.104.0/24'],
      nodeFields: { 'node-a': { podCIDRs: ['127.0.101.0/24'] }, 'node-b': { podCIDRs: ['127.0.103.0/25'] } },
      extraNodes: [{ name: 'cloud-1', role: 'cloud', addresses: ['127.0.0.1'], kubeletPort: cloudNode.port }],
    });
    await topology.waitReachable('node-a', 30_000);
  });
  after(async () => {
    await topology?.stop();
    await Promise.all([pod, otherPod, cloudNode, service].map((s) => s?.close()));
  });

  async function get(target: string): Promise<{ status: number; body?: string }> {
    const result = await topology.connect(target);
    if (result.status !== 200) {
      result.socket.destroy();
      return { status: result.status };
    }
    const response = await httpsThroughTunnel(result.socket, { method: 'GET', path: '/' });
    return { status: result.status, body: response.body.toString() };
  }

  step("CONNECT to a pod IP in node-a's pod CIDR reaches the pod through node-a's tunnel", async () => {
    assert.deepEqual(await get(`${POD_IP}:${podPort}`), { status: 200, body: 'kubelet pod-on-node-a\n' });
  });

  step('pod IPs outside every pod CIDR, or ports off the pod allowlist, are refused', async () => {
    assert.equal((await get(`127.0.102.7:${podPort}`)).status, 404, 'a live server outside any pod CIDR is not reachable');
    assert.equal((await get(`${POD_IP}:${topology.kubeletPort('node-a')}`)).status, 404, 'a pod IP with a non-pod port');
    assert.equal((await get('127.0.103.200:' + podPort)).status, 404, "outside node-b's /25");
  });

  step('a cloud node is reached directly: by address on any port, by name on its allowlisted ports', async () => {
    assert.deepEqual(await get(`cloud-1:${cloudNode.port}`), { status: 200, body: 'kubelet cloud-1\n' });
    assert.deepEqual(await get(`127.0.0.1:${cloudNode.port}`), { status: 200, body: 'kubelet cloud-1\n' });
    assert.equal((await get(`cloud-1:${topology.connectPort}`)).status, 404);
  });

  step('a Service ClusterIP is dialed directly on any port; an address outside the Service CIDR is not', async () => {
    assert.deepEqual(await get(`${SERVICE_IP}:${service.port}`), { status: 200, body: 'kubelet a-service\n' });
    assert.equal((await get(`127.0.105.9:${service.port}`)).status, 404, 'outside the Service CIDR');
  });

  step('xds route says what the cloud Envoy does, for every kind of destination', async () => {
    // The admin endpoint the command reads, for every target; the command itself for two (its exit status).
    const explain = async (target: string): Promise<{ verdict: string; node?: string; reason?: string }> =>
      parse(await (await fetch(`${topology.xdsAdminUrl}/route?target=${encodeURIComponent(target)}`)).text()) as { verdict: string; node?: string; reason?: string };
    const run = promisify(execFile);
    const routeCommand = async (target: string): Promise<number> => {
      const args = ['--import', 'tsx', join(import.meta.dirname, '..', 'xds', 'cli', 'main.ts'), 'route', target, '--admin', topology.xdsAdminUrl];
      return run(process.execPath, args).then(() => 0, (e: { code?: number }) => e.code ?? -1);
    };
    const targets = [
      `node-a:${topology.kubeletPort('node-a')}`,
      `${POD_IP}:${podPort}`,
      `${POD_IP}:${topology.kubeletPort('node-a')}`,
      `cloud-1:${cloudNode.port}`,
      `${SERVICE_IP}:${service.port}`,
      `127.0.105.9:${service.port}`,
      `node-a:${topology.connectPort}`,
    ];
    for (const target of targets) {
      const explained = await explain(target);
      const actual = (await get(target)).status;
      // Envoy's answer and the explanation agree: routed ones answer 200, refused ones 404 at once.
      assert.equal(actual === 200, explained.verdict !== 'refused', `${target}: Envoy answered ${actual}, xds route said ${JSON.stringify(explained)}`);
    }
    assert.equal((await explain(`node-a:${topology.kubeletPort('node-a')}`)).node, 'node-a');
    assert.match((await explain(`node-a:${topology.connectPort}`)).reason ?? '', /is not allowed on edge node node-a/);
    assert.equal(await routeCommand(`node-a:${topology.kubeletPort('node-a')}`), 0, 'routed: exit 0');
    assert.equal(await routeCommand(`node-a:${topology.connectPort}`), 3, 'refused: exit 3');
  });
});
