// Envoy itself checks the bootstraps agent-bootstrap renders (`envoy --mode validate`), including the
// reverse-tunnel bootstrap extensions, which only a real Envoy build knows.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { cloudBootstrap, edgeBootstrap, renderBootstrap } from '../agent-bootstrap/bootstrap.js';
import { envoyBinary, runDir } from './harness/index.js';

const run = promisify(execFile);
const options = { xds: { address: '127.0.0.1', port: 18000 }, adminPort: 19001, concurrency: 2 };

describe('bootstraps accepted by Envoy 1.40', () => {
  for (const [role, bootstrap] of [
    ['edge', edgeBootstrap({ id: 'edge-1.zone-a.example', ...options })],
    ['cloud', cloudBootstrap({ id: 'cloud-1', ...options })],
  ] as const) {
    it(`${role} bootstrap passes envoy --mode validate`, async () => {
      const path = join(runDir(), `validate-${role}.yaml`);
      writeFileSync(path, renderBootstrap(bootstrap));
      const { stdout, stderr } = await run(envoyBinary(), ['--mode', 'validate', '-c', path, '--base-id', String(40_000 + Math.floor(Math.random() * 20_000))]).catch(
        (error: { stdout?: string; stderr?: string }) => {
          throw new Error(`envoy rejected the ${role} bootstrap:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
        },
      );
      assert.match(stdout + stderr, /OK/);
    });
  }
});
