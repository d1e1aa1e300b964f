// Readiness that tells the truth, against real Envoys: an Envoy is ready only once it accepted its
// configuration (the xDS config sources wait for the first answer however long it takes; Envoy's
// default would call it ready after 15 s with nothing), and a cloud replica only once it also holds
// reverse tunnels, or after a grace period when there is no edge at all. The check is the readiness
// probe the cloud StatefulSet runs, k8s/base/probes/cloud-ready.sh, run here as it is shipped.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { writeBootstrap } from '../agent-bootstrap/write.js';
import { EnvoyAdmin, freePort, startEnvoy, waitFor } from './harness/index.js';
import { Topology, stepsWithLogs } from './topology.js';

const run = promisify(execFile);
const PROBE = join(import.meta.dirname, '..', 'k8s', 'base', 'probes', 'cloud-ready.sh');

/** Runs the probe against an admin endpoint; resolves to its exit code and what it printed. */
async function probe(adminPort: number, graceSeconds: number): Promise<{ code: number; output: string }> {
  const env = { ...process.env, ADMIN_PORT: String(adminPort), GRACE_SECONDS: String(graceSeconds) };
  return run('bash', [PROBE], { env, timeout: 10_000 }).then(
    ({ stdout }) => ({ code: 0, output: stdout }),
    (error: { code?: number; stdout?: string }) => ({ code: error.code ?? -1, output: error.stdout ?? '' }),
  );
}

describe('readiness: configuration accepted, tunnels held', { concurrency: false }, () => {
  let topology: Topology;
  const step = stepsWithLogs(() => topology?.processes.describeFailure());

  before(async () => {
    topology = await Topology.start({ nodes: ['node-a'] });
    await topology.waitReachable('node-a', 30_000);
  });
  after(async () => topology?.stop());

  step('a cloud Envoy holding tunnels is ready', async () => {
    assert.deepEqual(await probe(topology.cloudAdmin.port, 3600), { code: 0, output: '' });
  });

  step('without tunnels it is not ready until the grace period is over', async () => {
    await topology.stopEdge('node-a');
    const refused = await waitFor('the probe to fail', async () => {
      const result = await probe(topology.cloudAdmin.port, 3600);
      return result.code !== 0 ? result : undefined;
    }, { timeoutMs: 15_000 });
    assert.equal(refused.code, 1);
    assert.match(refused.output, /not ready: no reverse tunnels yet \(up \d+ s; ready without tunnels after 3600 s\)/);
    assert.equal((await probe(topology.cloudAdmin.port, 0)).code, 0, 'a fleet with no edge: ready after the grace period');
    await topology.startEdge('node-a');
    await waitFor('ready again with the tunnels back', async () => (await probe(topology.cloudAdmin.port, 3600)).code === 0, { timeoutMs: 20_000 });
  });

  step('an Envoy that cannot reach the xDS server is never ready, not even after 15 s', async () => {
    const adminPort = await freePort();
    const nobody = await freePort();
    const configPath = writeBootstrap({
      role: 'cloud',
      id: 'cut-off',
      xds: { address: '127.0.0.1', port: nobody },
      adminPort,
      outDir: join(topology.dir, 'cut-off'),
    });
    const envoy = await startEnvoy(topology.processes, { name: 'cut-off-envoy', configPath, baseId: topology.takeBaseId(), concurrency: 1, adminPort });
    const admin = new EnvoyAdmin(adminPort);
    await waitFor('its admin endpoint', async () => (await admin.get('/server_info').catch(() => undefined))?.status === 200, { timeoutMs: 15_000 });
    // Watched over a window longer than Envoy's default initial fetch timeout (15 s), after which it
    // would have reported itself ready with no configuration at all.
    const until = Date.now() + 17_000;
    while (Date.now() < until) {
      assert.equal((await admin.get('/ready')).status, 503, 'ready without a configuration');
      await delay(500); // pacing of the observation, not a wait for a condition
    }
    const result = await probe(adminPort, 0);
    assert.equal(result.code, 1);
    assert.match(result.output, /has not accepted its configuration/);
    await envoy.process.stop();
  });
});
