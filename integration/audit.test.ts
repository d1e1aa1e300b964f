// Auditing against real Envoys: `xds diff` compares what the control plane intends with what each
// Envoy runs (its /config_dump), and `xds status` reports what each proxy ACKed or NACKed. A cloud
// Envoy that cannot take a change (its CONNECT listener moved to an address it cannot bind) NACKs it:
// both commands say so, with Envoy's error, until the change is undone.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { promisify } from 'node:util';
import { waitFor } from './harness/index.js';
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

  before(async () => {
    topology = await Topology.start({ nodes: ['node-a'] });
    await topology.waitReachable('node-a', 30_000);
  });
  after(async () => topology?.stop());

  step('every Envoy runs exactly what the control plane intends', async () => {
    const edge = await xds('diff', '--role', 'edge', '--node', 'node-a', '--envoy', `http://127.0.0.1:${topology.edgeAdminPort('node-a')}`, ...admin());
    assert.deepEqual(edge, { code: 0, stdout: 'match: the Envoy runs all 6 intended resources, and nothing else\n' });
    const cloud = await xds('diff', '--role', 'cloud', '--envoy', `http://127.0.0.1:${topology.cloudAdmin.port}`, ...admin());
    assert.equal(cloud.code, 0, cloud.stdout);
    assert.equal((await xds('status', ...admin())).code, 0);
  });

  step('a change the cloud Envoy rejects shows as a NACK in xds status and as a difference in xds diff', async () => {
    // An address of no interface here: the new CONNECT listener cannot bind, so Envoy NACKs the update.
    await topology.restartXds(['--connect-listen', `192.0.2.200:${topology.connectPort}`]);
    const nacked = await waitFor('the NACK', async () => {
      const result = await xds('status', '-o', 'json', ...admin());
      return result.code === 3 ? (JSON.parse(result.stdout) as { problems: { kind: string; where: string; detail: string }[] }) : undefined;
    }, { timeoutMs: 15_000 });
    assert.deepEqual(nacked.problems.map((p) => p.kind), ['nacked']);
    assert.match(nacked.problems[0].where, /^cloud cloud-1 via /);
    assert.match(nacked.problems[0].detail, /Listener version \S+ NACKed at .*192\.0\.2\.200/);
    const diff = await xds('diff', '--role', 'cloud', '--envoy', `http://127.0.0.1:${topology.cloudAdmin.port}`, ...admin());
    assert.equal(diff.code, 3);
    assert.match(diff.stdout, /~ Listener connect_egress \(changed\)\n {4}address\.socketAddress\.address: "192\.0\.2\.200" ≠ "127\.0\.0\.1"/);
    // The old listener keeps serving meanwhile.
    assert.equal(await topology.reach('node-a'), 'kubelet node-a\n');
  });

  step('undoing the change clears both', async () => {
    await topology.restartXds();
    await waitFor('status clean again', async () => (await xds('status', ...admin())).code === 0, { timeoutMs: 15_000 });
    assert.equal((await xds('diff', '--role', 'cloud', '--envoy', `http://127.0.0.1:${topology.cloudAdmin.port}`, ...admin())).code, 0);
  });
});
