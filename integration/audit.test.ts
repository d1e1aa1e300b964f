// Auditing against real Envoys: `xds diff` compares what the control plane intends with what each
// Envoy runs (its /config_dump), and `xds status` reports what each proxy ACKed or NACKed; a real
// Prometheus scrapes the xDS server with the alert rules of k8s/examples/prometheus-alerts.yaml. A cloud
// Envoy that cannot take a change (its CONNECT listener moved to an address it cannot bind) NACKs it:
// both commands say so, with Envoy's error, and the NACK alert fires, until the change is undone.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { promisify } from 'node:util';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { freePort, waitFor } from './harness/index.js';
import { startPrometheus, type Prometheus } from './harness/prometheus.js';
import { Topology, stepsWithLogs } from './topology.js';

const ROOT = join(import.meta.dirname, '..');
const run = promisify(execFile);

/** Runs `xds <args>`; resolves to its exit status and output. */
async function xds(...args: string[]): Promise<{ code: number; stdout: string }> {
  return run(process.execPath, ['--import', 'tsx', 'xds/cli/main.ts', ...args], { cwd: ROOT }).then(
    (r) => ({ code: 0, stdout: r.stdout }),
    (e: { code?: number; stdout?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '' }),
  );
}

describe('auditing real Envoys: xds diff and xds status', { concurrency: false }, () => {
  let topology: Topology;
  const step = stepsWithLogs(() => topology?.processes.describeFailure());
  const admin = (): string[] => ['--admin', topology.xdsAdminUrl];

  let prometheus: Prometheus;

  before(async () => {
    topology = await Topology.start({ nodes: ['node-a'] });
    await topology.waitReachable('node-a', 30_000);
    // The example rules as shipped, but for `for:` (minutes there; a test cannot wait that long).
    const rules = readFileSync(join(ROOT, 'k8s', 'examples', 'prometheus-alerts.yaml'), 'utf8').replace(/^(\s+)for: \S+$/gm, '$1for: 0s');
    const dir = join(topology.dir, 'prometheus');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'alerts.yaml'), rules);
    const xdsAdmin = new URL(topology.xdsAdminUrl);
    const config = { global: { scrape_interval: '1s', evaluation_interval: '1s' }, rule_files: [join(dir, 'alerts.yaml')], scrape_configs: [{ job_name: 'xds', static_configs: [{ targets: [xdsAdmin.host] }] }] };
    writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
    prometheus = await startPrometheus(topology.processes, { name: 'prometheus', config: join(dir, 'prometheus.yml'), dataDir: join(dir, 'data'), host: '127.0.0.1', port: await freePort() });
  });
  after(async () => topology?.stop());

  step('every Envoy runs exactly what the control plane intends', async () => {
    const edge = await xds('diff', '--role', 'edge', '--node', 'node-a', '--envoy', `http://127.0.0.1:${topology.edgeAdminPort('node-a')}`, ...admin());
    assert.deepEqual(edge, { code: 0, stdout: 'match: the Envoy runs all 6 intended resources, and nothing else\n' });
    const cloud = await xds('diff', '--role', 'cloud', '--envoy', `http://127.0.0.1:${topology.cloudAdmin.port}`, ...admin());
    assert.equal(cloud.code, 0, cloud.stdout);
    const status = await xds('status', '-o', 'json', ...admin());
    assert.equal(status.code, 0);
    // Edge and cloud Envoys speak incremental ADS by default.
    const proxies = (JSON.parse(status.stdout) as { proxies: { role: string; api: string }[] }).proxies;
    assert.deepEqual([...new Set(proxies.map((p) => `${p.role} ${p.api}`))].sort(), ['cloud delta', 'edge delta']);
  });

  step('a change the cloud Envoy rejects shows as a NACK in xds status and as a difference in xds diff', async () => {
    // An address of no interface here: the new CONNECT listener cannot bind, so Envoy NACKs the update.
    await topology.restartXds(['--connect-listen', `192.0.2.200:${topology.connectPort}`]);
    // Once every proxy is back on the restarted server (no edge missing), the only problem is the NACK.
    const nacked = await waitFor('the NACK, every proxy reconnected', async () => {
      const result = await xds('status', '-o', 'json', ...admin());
      if (result.code !== 3) return undefined;
      const report = JSON.parse(result.stdout) as { problems: { kind: string; where: string; detail: string }[] };
      return report.problems.some((p) => p.kind === 'nacked') && report.problems.every((p) => p.kind !== 'missing') ? report : undefined;
    }, { timeoutMs: 15_000 });
    assert.deepEqual(nacked.problems.map((p) => p.kind), ['nacked']);
    assert.match(nacked.problems[0].where, /^cloud cloud-1 via /);
    assert.match(nacked.problems[0].detail, /Listener version \S+ NACKed at .*192\.0\.2\.200/);
    const diff = await xds('diff', '--role', 'cloud', '--envoy', `http://127.0.0.1:${topology.cloudAdmin.port}`, ...admin());
    assert.equal(diff.code, 3);
    assert.match(diff.stdout, /~ Listener connect_egress \(changed\)\n {4}address\.socketAddress\.address: "192\.0\.2\.200" ≠ "127\.0\.0\.1"/);
    // The old listener keeps serving meanwhile.
    assert.equal(await topology.reach('node-a'), 'kubelet node-a\n');
    await waitFor('EdgeTunnelProxyNacking firing', async () => (await prometheus.alerts()).EdgeTunnelProxyNacking === 'firing', { timeoutMs: 20_000, intervalMs: 500 }).catch(
      async (error: Error) => assert.fail(`${error.message}; alerts: ${JSON.stringify(await prometheus.alerts())}; targets: ${await prometheus.targets()}`),
    );
    assert.equal(await prometheus.query('xds_nacking_proxies{role="cloud"}'), 1);
    // The serving certificate's expiry is exported (and far enough away that its alert is quiet).
    const expiry = (await prometheus.query('xds_certificate_expiry_timestamp_seconds{purpose="xds"}')) ?? 0;
    assert.ok(expiry * 1000 > Date.now() + 86_400_000, `the xDS certificate expires at ${new Date(expiry * 1000).toISOString()}`);
  });

  step('undoing the change clears both', async () => {
    await topology.restartXds();
    await waitFor('status clean again', async () => (await xds('status', ...admin())).code === 0, { timeoutMs: 15_000 });
    await waitFor('the NACK alert cleared', async () => (await prometheus.alerts()).EdgeTunnelProxyNacking === undefined, { timeoutMs: 20_000, intervalMs: 500 });
    // The other rules were loaded and evaluate without errors, quiet in this healthy topology.
    assert.deepEqual(await prometheus.alerts(), {});
    assert.equal((await xds('diff', '--role', 'cloud', '--envoy', `http://127.0.0.1:${topology.cloudAdmin.port}`, ...admin())).code, 0);
  });
});
