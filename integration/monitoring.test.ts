// Monitoring edge nodes from the cloud with unchanged clients, against the real kube-apiserver: the
// real metrics-server (which cannot use a CONNECT proxy) serves `kubectl top` for edge nodes and their
// pods through an edge-tunnel sidecar Envoy driven by the xDS server, and a real Prometheus scrapes
// edge-a's kubelet both ways, with `proxy_url` and through the sidecar, using the scrape jobs of
// k8s/examples/prometheus-scrape.yaml. kwok plays the kubelets, metrics included.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { freePort, runDir, waitFor } from './harness/index.js';
import { EdgeCluster } from './kube/edge-cluster.js';
import { MONITORING, MonitoringPod, sidecarServeArgs } from './kube/monitoring.js';
import { stepsWithLogs } from './topology.js';

describe('monitoring from the cloud: metrics-server and Prometheus through edge-tunnel', { concurrency: false }, () => {
  let edge: EdgeCluster;
  let monitoring: MonitoringPod;
  const kubectl = (...args: string[]) => edge.cluster.kubectl(args);
  const step = stepsWithLogs(() => edge?.describeFailure());

  before(async () => {
    const dir = mkdtempSync(join(runDir(), 'cluster-'));
    const certsDir = join(dir, 'certs');
    const connectPort = await freePort();
    edge = await EdgeCluster.start({
      nodes: [
        { name: 'edge-a', ip: '192.0.2.11', podCIDR: '198.51.100.0/26' },
        { name: 'edge-b', ip: '192.0.2.12', podCIDR: '198.51.100.64/26' },
      ],
      dir,
      certsDir,
      connectPort,
      serveArgs: sidecarServeArgs(certsDir, connectPort),
      apiserverIps: [MONITORING.hostIp],
    });
    try {
      await edge.runPod('edge-a', 'app-a');
      monitoring = await MonitoringPod.start(edge, ['edge-a', 'edge-b'].map((node) => edge.topology.kubeletPort(node)));
    } catch (error) {
      process.stderr.write(edge.describeFailure());
      throw error;
    }
  });
  after(async () => edge?.stop());

  step('kubectl top node edge-a: metrics-server read the edge kubelet through the sidecar', async () => {
    // NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%: the one pod's 250m and 64Mi (kwok's usage model); the
    // CPU figure needs two scrapes, 10 s apart, so the first answers may be missing or partial.
    let last = '';
    await waitFor('kubectl top node edge-a showing 250m and 64Mi', async () => {
      last = (await kubectl('top', 'node', 'edge-a', '--no-headers').catch((error: { stderr?: string }) => ({ stdout: error.stderr ?? '' }))).stdout;
      return /^edge-a\s+250m\s+\S+\s+64Mi\s+/.test(last);
    }, { timeoutMs: 60_000, intervalMs: 1000 }).catch((error: Error) => assert.fail(`${error.message}; last: ${last}`));
    assert.ok((await monitoring.capturedConnections()) > 0, 'the sidecar carried the scrape');
  });

  step('kubectl top pod app-a: a pod on an edge node', async () => {
    let last = '';
    await waitFor('kubectl top pod app-a showing 250m and 64Mi', async () => {
      last = (await kubectl('top', 'pod', 'app-a', '--no-headers').catch((error: { stderr?: string }) => ({ stdout: error.stderr ?? '' }))).stdout;
      return /^app-a\s+250m\s+64Mi/.test(last);
    }, { timeoutMs: 30_000, intervalMs: 1000 }).catch((error: Error) => assert.fail(`${error.message}; last: ${last}`));
  });

  step("Prometheus scrapes edge-a's kubelet with proxy_url (the CONNECT listener)", async () => {
    const prometheus = await monitoring.startPrometheus('edge-kubelet', { inPod: false, proxyUrl: `https://127.0.0.1:${edge.topology.connectPort}` });
    await waitFor('edge-a up', async () => (await prometheus.query('up{node="edge-a",job="edge-kubelet"}')) === 1, { timeoutMs: 30_000, intervalMs: 500 }).catch(
      async (error: Error) => assert.fail(`${error.message}\ntargets:\n${await prometheus.targets()}`),
    );
    assert.ok(((await prometheus.query('scrape_samples_scraped{node="edge-a",job="edge-kubelet"}')) ?? 0) > 0, 'samples from the kubelet');
  });

  step("Prometheus scrapes edge-a's kubelet through the sidecar, without a proxy setting", async () => {
    const before = await monitoring.capturedConnections();
    const prometheus = await monitoring.startPrometheus('edge-kubelet-via-sidecar', { inPod: true });
    await waitFor('edge-a up', async () => (await prometheus.query('up{node="edge-a",job="edge-kubelet-via-sidecar"}')) === 1, { timeoutMs: 30_000, intervalMs: 500 }).catch(
      async (error: Error) => assert.fail(`${error.message}\ntargets:\n${await prometheus.targets()}`),
    );
    assert.ok(((await prometheus.query('scrape_samples_scraped{node="edge-a",job="edge-kubelet-via-sidecar"}')) ?? 0) > 0, 'samples from the kubelet');
    await waitFor('edge-b up too', async () => (await prometheus.query('up{node="edge-b",job="edge-kubelet-via-sidecar"}')) === 1, { timeoutMs: 10_000, intervalMs: 500 });
    assert.ok((await monitoring.capturedConnections()) > before, 'through the sidecar');
  });
});
