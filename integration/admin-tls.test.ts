// The xDS server's admin endpoint shows every route into the edge, so its plain listener is loopback
// only; the secure one (`--secure-admin`) is HTTPS with client certificates (`--admin-tls-dir`), and the
// audit commands reach it with `--admin-tls-dir` of their own. Real `xds serve` and `xds` processes.
// (Bearer tokens reviewed by Kubernetes: integration/admin-cluster.test.ts.)

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { writeTlsDir } from '../certs/bundle.js';
import { createAuthority, issue } from '../certs/issue.js';
import { ProcessSet, freePort, runDir, waitFor } from './harness/index.js';

const ROOT = join(import.meta.dirname, '..');
const run = promisify(execFile);

async function xds(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', 'xds/cli/main.ts', ...args], { cwd: ROOT }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
  );
}

/** An HTTPS GET with the given client identity (or none); resolves to the status, rejects on a refused handshake. */
function httpsGet(url: string, tls: { ca: string; cert?: string; key?: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the admin endpoint: loopback, and HTTPS with client certificates', { concurrency: false }, () => {
  const processes = new ProcessSet();
  const dir = mkdtempSync(join(runDir(), 'admin-tls-'));
  let port: number;
  let ca: string;
  let client: { cert: string; key: string };

  before(async () => {
    const authority = await createAuthority('admin CA');
    ca = authority.cert;
    writeTlsDir(join(dir, 'server'), await issue(authority, { commonName: 'xds admin', ipAddresses: ['127.0.0.1'], usage: 'server' }), { 'ca.crt': ca });
    client = await issue(authority, { commonName: 'operator', usage: 'client' });
    writeTlsDir(join(dir, 'client'), client, { 'ca.crt': ca });
    writeFileSync(join(dir, 'nodes.yaml'), 'nodes:\n  - {name: node-a, addresses: [192.0.2.11]}\n');
    port = await freePort();
    const server = await processes.start({
      name: 'xds-server',
      command: process.execPath,
      args: [
        '--import', 'tsx', join(ROOT, 'xds/cli/main.ts'), 'serve', '--nodes-file', join(dir, 'nodes.yaml'), '--insecure',
        '--listen', `127.0.0.1:${await freePort()}`, '--admin', `127.0.0.1:${await freePort()}`,
        '--secure-admin', `127.0.0.1:${port}`, '--admin-tls-dir', join(dir, 'server'),
      ],
      cwd: ROOT,
    });
    await waitFor('the admin endpoint', async () => {
      if (server.exitInfo() !== undefined) throw new Error(`xds serve exited:\n${server.logTail(20)}`);
      return (await httpsGet(`https://127.0.0.1:${port}/healthz`, { ca, ...client }).catch(() => 0)) === 200;
    }, { timeoutMs: 20_000 });
  });
  after(async () => {
    await processes.stopAll();
  });

  it('answers an audit command that presents a client certificate', async () => {
    const routed = await xds('route', 'node-a:10250', '--admin', `https://127.0.0.1:${port}`, '--admin-tls-dir', join(dir, 'client'));
    assert.equal(routed.code, 0, routed.stderr);
    assert.match(routed.stdout, /verdict: tunnel\nnode: node-a/);
  });

  it('refuses a client without a certificate (or with one of another CA), and plain HTTP', async () => {
    assert.equal(await httpsGet(`https://127.0.0.1:${port}/dump?role=cloud`, { ca }), 401);
    const stranger = await issue(await createAuthority('another CA'), { commonName: 'stranger', usage: 'client' });
    assert.equal(await httpsGet(`https://127.0.0.1:${port}/dump?role=cloud`, { ca, ...stranger }), 401);
    const plain = await xds('route', 'node-a:10250', '--admin', `http://127.0.0.1:${port}`);
    assert.equal(plain.code, 1);
  });

  it('answers /healthz to anyone, for HTTPS probes', async () => {
    assert.equal(await httpsGet(`https://127.0.0.1:${port}/healthz`, { ca }).catch((e: Error) => e.message), 200);
  });

  it('will not serve the plain admin beyond loopback, nor a secure one without certificates or a cluster to review tokens', async () => {
    const open = await xds('serve', '--nodes-file', join(dir, 'nodes.yaml'), '--insecure', '--admin', `0.0.0.0:${await freePort()}`);
    assert.equal(open.code, 2);
    assert.match(open.stderr, /is not a loopback address: use --secure-admin 0\.0\.0\.0:\d+ with --admin-tls-dir/);
    const bare = await xds('serve', '--nodes-file', join(dir, 'nodes.yaml'), '--insecure', '--secure-admin', `0.0.0.0:${await freePort()}`);
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /--secure-admin needs --admin-tls-dir/);
    const tokens = await xds('serve', '--nodes-file', join(dir, 'nodes.yaml'), '--insecure', '--secure-admin', `0.0.0.0:${await freePort()}`, '--admin-tls-dir', join(dir, 'server'), '--admin-auth', 'token');
    assert.equal(tokens.code, 2);
    assert.match(tokens.stderr, /--admin-auth token asks Kubernetes about each token: it needs --kubeconfig or --in-cluster/);
  });
});
