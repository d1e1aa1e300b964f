// The fleet benchmark's pipeline (bench/fleet/fleet.ts), small, as a test: a real kube-apiserver with
// Node objects, the xDS server watching them, synthetic edge proxies on mutual-TLS incremental ADS and a
// real cloud Envoy. Asserts completeness, never timing: every edge settles, every timed Node change
// becomes routable at the cloud Envoy, and every proxy is back after the xDS server restarts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { measureFleet, type CloudRoutes } from '../bench/fleet/fleet.js';

const SIZE = 20;
const CHANGES_PER_SECOND = 10;
const LOAD_SECONDS = 3;

describe('the control path at fleet scale, small (bench/fleet)', () => {
  for (const cloudRoutes of ['inline', 'vhds'] as const satisfies readonly CloudRoutes[]) {
    it(`${cloudRoutes}: every Node change in the API becomes routable, and every proxy comes back after an xDS restart`, async () => {
      const result = await measureFleet({ size: SIZE, cloudRoutes, changesPerSecond: CHANGES_PER_SECOND, loadSeconds: LOAD_SECONDS, say: (line) => process.stderr.write(`${line}\n`) });
      const changes = CHANGES_PER_SECOND * LOAD_SECONDS;
      assert.equal(result.changes, changes);
      assert.equal(result.failedPatches, 0, 'the API server refused a change');
      // Every 5th change is timed: each became routable, or its node changed again first (more changes than nodes).
      assert.equal(result.unroutable, 0, 'a timed change never became routable');
      assert.equal(result.routableMs.length + result.superseded, Math.ceil(changes / 5));
      assert.ok(result.routableMs.length >= Math.ceil(changes / 5) - Math.ceil(changes / SIZE), `${result.routableMs.length} timed changes routable`);
      assert.ok(result.cloudBytesPerChange > 0 && result.edgeBytesPerChange > 0, 'the cloud and the edges were sent the changes');
      assert.ok(Number.isFinite(result.stormSeconds), 'every proxy settled again after the restart');
    });
  }
});
