// Envoy itself checks the bootstraps agent-bootstrap writes (`envoy --mode validate`), including the
// reverse-tunnel bootstrap extensions and the file-based secrets of the xDS connection, which only a
// real Envoy build knows.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { writeBootstrap } from '../agent-bootstrap/write.js';
import { bundlePaths, writeBundle } from '../certs/bundle.js';
import { envoyBinary, runDir } from './harness/index.js';

const run = promisify(execFile);

describe('bootstraps accepted by Envoy 1.40', () => {
  const cases = [
    { role: 'edge', id: 'edge-1.zone-a.example', tls: true },
    { role: 'cloud', id: 'cloud-1', tls: true },
    { role: 'edge', id: 'node-a', tls: false },
  ] as const;
  for (const { role, id, tls } of cases) {
    it(`${role} bootstrap (${tls ? 'mutual TLS' : 'insecure'}) passes envoy --mode validate`, async () => {
      const dir = join(runDir(), `validate-${role}-${tls}`);
      const certs = join(dir, 'certs');
      if (tls) await writeBundle({ out: certs, edgeNodes: [id], cloudNames: ['cloud.example'], xdsNames: ['xds.example'] });
      const tlsDir = role === 'edge' ? bundlePaths(certs).edgeDir(id) : bundlePaths(certs).cloudDir;
      const path = writeBootstrap({
        role,
        id,
        xds: { address: '127.0.0.1', port: 18000 },
        adminPort: 19001,
        concurrency: 2,
        outDir: dir,
        tls: tls ? { dir: tlsDir, serverName: 'xds.example' } : undefined,
      });
      const baseId = String(40_000 + Math.floor(Math.random() * 20_000));
      const { stdout, stderr } = await run(envoyBinary(), ['--mode', 'validate', '-c', path, '--base-id', baseId]).catch(
        (error: { stdout?: string; stderr?: string }) => {
          throw new Error(`envoy rejected the ${role} bootstrap:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
        },
      );
      assert.match(stdout + stderr, /OK/);
    });
  }
});
