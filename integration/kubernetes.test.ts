// The real thing: kube-apiserver v1.37 with its `cluster` egress through edge-tunnel (mutual TLS),
// the xDS server watching Node objects, kwok kubelets behind edge Envoys at TEST-NET addresses that
// nothing but the tunnels reaches, and the real kubectl.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { blobChunks, blobSha256, freePort, httpsThroughTunnel, openConnect, waitFor } from './harness/index.js';
import { toolPath } from './kube/cluster.js';
import { EDGE_LABEL, EdgeCluster, criLine, nodeObject } from './kube/edge-cluster.js';
import { stepsWithLogs } from './topology.js';

const ROOT = join(import.meta.dirname, '..');
const MiB = 1024 * 1024;

describe('Kubernetes end to end: kubectl through edge-tunnel', { concurrency: false }, () => {
  let edge: EdgeCluster;
  const kubectl = (...args: string[]) => edge.cluster.kubectl(args);

  const step = stepsWithLogs(() => edge?.describeFailure());

  before(async () => {
    edge = await EdgeCluster.start({
      nodes: [
        { name: 'edge-a', ip: '192.0.2.11', podCIDR: '198.51.100.0/26', laterIps: ['192.0.2.21'] },
        { name: 'edge-b', ip: '192.0.2.12', podCIDR: '198.51.100.64/26' },
      ],
    });
    await edge.runPod('edge-a', 'app-a');
    await edge.runPod('edge-b', 'app-b');
  });
  after(async () => edge?.stop());

  /** kubectl that must fail; resolves to its stderr. */
  const kubectlFails = async (...args: string[]): Promise<string> => {
    const outcome = await kubectl(...args).then(
      () => undefined,
      (error: { stderr?: string }) => error.stderr ?? String(error),
    );
    assert.ok(outcome !== undefined, `kubectl ${args.join(' ')} was expected to fail`);
    return outcome;
  };

  step('kubectl logs reaches each node through its own tunnel, never the other', async () => {
    assert.equal((await kubectl('logs', 'app-a')).stdout, 'hello from a pod on edge-a\n');
    assert.equal((await kubectl('logs', 'app-b')).stdout, 'hello from a pod on edge-b\n');
  });

  step('kubectl logs -f keeps streaming new lines', async () => {
    const follow = spawn(toolPath('kubectl'), ['--kubeconfig', edge.cluster.kubeconfig, 'logs', '-f', 'app-a'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    follow.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    try {
      await waitFor('the first line', () => out.includes('hello from a pod on edge-a'), { timeoutMs: 10_000 });
      appendFileSync(edge.logsFile('edge-a'), criLine('a line written later'));
      await waitFor('the new line streamed', () => out.includes('a line written later'), { timeoutMs: 10_000 });
    } finally {
      follow.kill();
    }
  });

  step('kubectl exec returns stdout and stderr and reports the failed exit status', async () => {
    const ok = await kubectl('exec', 'app-a', '--', 'sh', '-c', 'echo out; echo err >&2');
    assert.equal(ok.stdout, 'out\n');
    assert.equal(ok.stderr, 'err\n');
    // kwok reports a non-zero exit as an internal error naming the status (a real kubelet says
    // "command terminated with exit code 3"); either way kubectl fails and names it.
    const failed = await kubectlFails('exec', 'app-a', '--', 'sh', '-c', 'echo out; exit 3');
    assert.match(failed, /exit (status|code) 3/);
  });

  step('kubectl exec -i carries stdin (a command that reads one line)', async () => {
    const child = edge.cluster.kubectl(['exec', '-i', 'app-b', '--', 'sh', '-c', 'read line; echo "got $line"'], { input: 'hello tunnel\n' });
    assert.equal((await child).stdout, 'got hello tunnel\n');
  });

  step('kubectl port-forward carries 64 MiB intact both ways', async (t) => {
    const localPort = await freePort();
    const forward = spawn(toolPath('kubectl'), ['--kubeconfig', edge.cluster.kubeconfig, 'port-forward', 'pod/app-a', `${localPort}:8080`], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => void forward.kill());
    let out = '';
    forward.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await waitFor('port-forward listening', () => out.includes('Forwarding from'), { timeoutMs: 15_000 });
    const size = 64 * MiB;
    const { connect } = await import('node:net');
    const upload = await httpsThroughTunnel(connect(localPort, '127.0.0.1'), { method: 'POST', path: '/sha256', body: blobChunks(size, 'up') });
    assert.equal(upload.body.toString().trim(), blobSha256(size, 'up'));
    const download = await httpsThroughTunnel(connect(localPort, '127.0.0.1'), { method: 'GET', path: `/blob?size=${size}&seed=down`, keepBody: false });
    assert.equal(download.bytes, size);
    assert.equal(download.sha256, blobSha256(size, 'down'));
    assert.equal(download.peerSubjectCN, 'kubelet-edge-a-forwarded', "the data came from edge-a's port-forward target");
  });

  step('the node proxy (kubectl get --raw …/nodes/<node>/proxy/healthz) works', async () => {
    assert.equal((await kubectl('get', '--raw', '/api/v1/nodes/edge-a/proxy/healthz')).stdout, 'ok');
    assert.equal((await kubectl('get', '--raw', '/api/v1/nodes/edge-b/proxy/healthz')).stdout, 'ok');
  });

  step("the pod proxy reaches an edge pod by its IP, through its node's tunnel", async () => {
    assert.equal((await kubectl('get', '--raw', '/api/v1/namespaces/default/pods/https:app-a:8443/proxy/')).stdout, 'kubelet app-a\n');
    assert.equal((await kubectl('get', '--raw', '/api/v1/namespaces/default/pods/https:app-b:8443/proxy/')).stdout, 'kubelet app-b\n');
    const stderr = await kubectlFails('get', '--raw', '/api/v1/namespaces/default/pods/https:app-a:9999/proxy/');
    assert.match(stderr, /404|Not ?Found|error/i, 'a pod port off the allowlist is refused');
  });

  step('EdgeTunnelReady on each edge Node follows its tunnels: stopped edge Envoy False, restarted True', async () => {
    const condition = async (node: string): Promise<string> =>
      (await kubectl('get', 'node', node, '-o', 'jsonpath={.status.conditions[?(@.type=="EdgeTunnelReady")].status} {.status.conditions[?(@.type=="EdgeTunnelReady")].reason}').catch(() => ({ stdout: '' }))).stdout;
    await waitFor('edge-a and edge-b EdgeTunnelReady', async () => (await condition('edge-a')) === 'True TunnelsUp' && (await condition('edge-b')) === 'True TunnelsUp', { timeoutMs: 15_000 });
    await edge.topology.stopEdge('edge-a');
    try {
      await waitFor('edge-a EdgeTunnelReady False', async () => (await condition('edge-a')) === 'False NoTunnel', { timeoutMs: 15_000 });
      assert.equal(await condition('edge-b'), 'True TunnelsUp', 'edge-b unaffected');
      const metrics = await (await fetch(`${edge.topology.xdsAdminUrl}/metrics`)).text();
      assert.match(metrics, /^xds_edge_tunnel_ready\{node="edge-a"\} 0$/m);
      assert.match(metrics, /^xds_edge_tunnel_ready\{node="edge-b"\} 1$/m);
      const { stdout } = await kubectl('describe', 'node', 'edge-a');
      assert.match(stdout, /EdgeTunnelReady\s+False .* NoTunnel\s+the cloud Envoy at 127\.0\.0\.1:\d+ holds no tunnel of edge-a/);
    } finally {
      await edge.topology.startEdge('edge-a');
    }
    await waitFor('edge-a EdgeTunnelReady True again', async () => (await condition('edge-a')) === 'True TunnelsUp', { timeoutMs: 15_000 });
  });

  step('the traffic goes through the tunnel: with edge-a\'s Envoy stopped its logs fail fast, then recover', async () => {
    await edge.topology.stopEdge('edge-a');
    try {
      // kube-apiserver pools kubelet connections: a pooled tunnel stream breaks first (EOF), then new
      // dials get the proxy's 503 at once.
      await kubectlFails('logs', 'app-a');
      const started = Date.now();
      const stderr = await kubectlFails('logs', 'app-a');
      assert.ok(Date.now() - started < 5000, `failed after ${Date.now() - started} ms`);
      assert.match(stderr, /503|Service Unavailable/i);
      assert.equal((await kubectl('logs', 'app-b')).stdout, 'hello from a pod on edge-b\n', 'edge-b is unaffected');
    } finally {
      await edge.topology.startEdge('edge-a');
    }
    await waitFor('edge-a logs again', async () => (await kubectl('logs', 'app-a').catch(() => ({ stdout: '' }))).stdout.includes('edge-a'), { timeoutMs: 15_000 });
  });

  step('a deleted Node fails fast; re-created, it is reachable again within seconds', async () => {
    await kubectl('delete', 'node', 'edge-b', '--wait=false');
    await waitFor('edge-b refused by the proxy', async () => {
      const result = await openConnect({ proxyHost: '127.0.0.1', proxyPort: edge.topology.connectPort, target: `192.0.2.12:${edge.topology.kubeletPort('edge-b')}`, proxyTls: edge.topology.clientTls() });
      result.socket.destroy();
      return result.status === 404;
    }, { timeoutMs: 5000 });
    await edge.cluster.apply(nodeObject(edge.spec('edge-b')));
    await waitFor('edge-b healthz through the tunnel', async () => (await kubectl('get', '--raw', '/api/v1/nodes/edge-b/proxy/healthz').catch(() => ({ stdout: '' }))).stdout === 'ok', { timeoutMs: 20_000 });
  });

  step("a changed InternalIP is routed at the new address", async () => {
    const patch = JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: '192.0.2.21' }, { type: 'Hostname', address: 'edge-a' }] } });
    await kubectl('patch', 'node', 'edge-a', '--subresource=status', '--type=merge', '-p', patch);
    await waitFor('edge-a healthz via 192.0.2.21', async () => (await kubectl('get', '--raw', '/api/v1/nodes/edge-a/proxy/healthz').catch(() => ({ stdout: '' }))).stdout === 'ok', { timeoutMs: 15_000 });
    const old = await openConnect({ proxyHost: '127.0.0.1', proxyPort: edge.topology.connectPort, target: `192.0.2.11:${edge.topology.kubeletPort('edge-a')}`, proxyTls: edge.topology.clientTls() });
    old.socket.destroy();
    assert.equal(old.status, 404, 'the old address is no longer routed');
  });

  step('a node relabelled as a cloud node leaves its tunnel for a direct route, and returns', async () => {
    const cloudRoutes = async (): Promise<string> => (await fetch(`${edge.topology.xdsAdminUrl}/dump?role=cloud`)).text();
    await kubectl('label', 'node', 'edge-b', `${EDGE_LABEL}-`);
    // A cloud node is dialed directly by the cloud Envoy (its address here answers nowhere, so the
    // routes, not a request, show it).
    await waitFor('edge-b routed as a cloud node', async () => {
      const routes = await cloudRoutes();
      return !routes.includes('name: node_edge-b') && routes.includes('name: direct_edge-b_');
    }, { timeoutMs: 10_000 });
    await kubectl('label', 'node', 'edge-b', `${EDGE_LABEL}=`);
    await waitFor('edge-b logs again', async () => (await kubectl('logs', 'app-b').catch(() => ({ stdout: '' }))).stdout.includes('edge-b'), { timeoutMs: 15_000 });
  });

  step('the manifests in k8s/, its NodePort variant and the metrics-server example pass a server-side dry run', async () => {
    // A dry run creates nothing, so the namespace the other objects live in must exist for real.
    await kubectl('create', 'namespace', 'edge-tunnel');
    for (const dir of ['k8s', 'k8s/nodeport']) {
      const { stdout } = await kubectl('apply', '--dry-run=server', '-k', join(ROOT, dir));
      assert.match(stdout, /daemonset\.apps\/\S+ created \(server dry run\)/, dir);
      assert.match(stdout, /clusterrole\.rbac\.authorization\.k8s\.io\/\S+ created \(server dry run\)/, dir);
    }
    const { stdout: nodePort } = await kubectl('kustomize', join(ROOT, 'k8s/nodeport'));
    assert.equal([...nodePort.matchAll(/type: NodePort/g)].length, 3, 'three public Services as NodePorts');
    // metrics-server with the sidecar component: the capture and bootstrap init containers, the sidecar.
    const { stdout: metricsServer } = await kubectl('apply', '--dry-run=server', '-k', join(ROOT, 'k8s/examples/metrics-server'));
    assert.match(metricsServer, /deployment\.apps\/metrics-server created \(server dry run\)/);
    const { stdout: rendered } = await kubectl('kustomize', join(ROOT, 'k8s/examples/metrics-server'));
    for (const container of ['edge-tunnel-capture', 'edge-tunnel-bootstrap', 'edge-tunnel-sidecar']) assert.match(rendered, new RegExp(`name: ${container}\n`), container);
  });

  step('every container image is pinned (never :latest) and pulled IfNotPresent', async () => {
    const { stdout } = await kubectl('kustomize', join(ROOT, 'k8s'));
    const images = [...stdout.matchAll(/^\s+image: (\S+)$/gm)].map((m) => m[1]);
    const policies = [...stdout.matchAll(/^\s+imagePullPolicy: (\S+)$/gm)].map((m) => m[1]);
    assert.ok(images.length >= 6, images.join(' '));
    for (const image of images) assert.match(image, /:(?!latest$)[\w.-]+$/, `${image} has a pinned tag`);
    assert.deepEqual(policies, images.map(() => 'IfNotPresent'));
  });
});
