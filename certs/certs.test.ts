import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { bundlePaths, loadBundleAuthority, pemBlocks, writeBundle, writeEdgeCertificate } from './bundle.js';
import { finishRollover, reissueAll, startRollover } from './rollover.js';
import { createAuthority, issue } from './issue.js';

describe('certs', () => {
  const out = mkdtempSync(join(tmpdir(), 'edge-tunnel-certs-'));
  after(() => rmSync(out, { recursive: true, force: true }));
  const read = (path: string): X509Certificate => new X509Certificate(readFileSync(path));

  it('writes a bundle whose certificates say what they prove', async () => {
    await writeBundle({ out, edgeNodes: ['node-a'], cloudNames: ['cloud.example', '10.0.0.1'], xdsNames: ['xds.example'] });
    const paths = bundlePaths(out);
    const ca = read(paths.ca);
    const clientCa = read(paths.clientCa);
    const edge = read(join(paths.edgeDir('node-a'), 'tls.crt'));
    assert.equal(edge.subjectAltName, 'DNS:node-a, URI:spiffe://edge-tunnel/edge/node-a');
    assert.ok(edge.verify(ca.publicKey), 'edge certificates are signed by the CA');
    assert.ok(!edge.verify(clientCa.publicKey), 'and not by the client CA');
    const cloud = read(join(paths.cloudDir, 'tls.crt'));
    assert.match(cloud.subjectAltName ?? '', /DNS:cloud.example/);
    assert.match(cloud.subjectAltName ?? '', /IP Address:10.0.0.1/);
    assert.ok(read(paths.client).verify(clientCa.publicKey), 'the demo client is signed by the client CA');
    assert.ok(new Date(edge.validTo).getTime() - Date.now() < 3 * 86_400_000, 'leaf certificates are short-lived');
    assert.ok(new Date(ca.validTo).getTime() - Date.now() > 9 * 365 * 86_400_000, 'CAs are long-lived (10 years by default)');
    assert.equal(readFileSync(join(paths.edgeDir('node-a'), 'ca.crt'), 'utf8'), readFileSync(paths.ca, 'utf8'));
  });

  it('re-issues a node certificate with the same CA (rotation)', async () => {
    const path = join(bundlePaths(out).edgeDir('node-a'), 'tls.crt');
    const before = read(path).serialNumber;
    await writeEdgeCertificate(out, await loadBundleAuthority(out, 'ca'), 'node-a');
    const after = read(path);
    assert.notEqual(after.serialNumber, before);
    assert.ok(after.verify(read(bundlePaths(out).ca).publicKey));
  });

  it('never issues a leaf that outlives its CA', async () => {
    const shortCa = await createAuthority('short-lived CA', 1);
    const leaf = new X509Certificate((await issue(shortCa, { commonName: 'leaf', usage: 'client' }, 30)).cert);
    assert.equal(new Date(leaf.validTo).getTime(), new Date(new X509Certificate(shortCa.cert).validTo).getTime());
  });

  it('keeps the common name within 64 characters for the longest node names', async () => {
    const long = Array.from({ length: 4 }, (_, i) => String(i).repeat(63)).join('.').slice(0, 253);
    await writeEdgeCertificate(out, await loadBundleAuthority(out, 'ca'), long);
    const cert = read(join(bundlePaths(out).edgeDir(long), 'tls.crt'));
    assert.ok((cert.subject.match(/CN=(.*)/)?.[1] ?? '').length <= 64);
    assert.match(cert.subjectAltName ?? '', new RegExp(`DNS:${long}`));
  });

  it('rolls the CA with an overlap: both trusted, everything re-issued, then the new one alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edge-tunnel-rollover-'));
    try {
      await writeBundle({ out: dir, edgeNodes: ['node-a'], cloudNames: ['cloud.example'], xdsNames: ['127.0.0.1'] });
      const paths = bundlePaths(dir);
      const blocks = (path: string): number => pemBlocks(readFileSync(path, 'utf8')).length;
      const oldCa = read(paths.ca);
      await startRollover(dir);
      await assert.rejects(startRollover(dir), /already under way/);
      assert.equal(blocks(paths.ca), 2);
      assert.equal(blocks(join(paths.edgeDir('node-a'), 'ca.crt')), 2, 'edges trust both');
      assert.equal(blocks(join(paths.xdsDir, 'ca.crt')), 2, 'the xDS server trusts both');
      await assert.rejects(finishRollover(dir), /still signed by the old CA, re-issue them first/);
      assert.equal((await reissueAll(dir, 'ca')).length, 3, 'xDS, cloud and node-a');
      const next = read(paths.caNext);
      const edge = read(join(paths.edgeDir('node-a'), 'tls.crt'));
      assert.ok(edge.verify(next.publicKey), 'signed by the next CA');
      assert.equal(edge.subjectAltName, 'DNS:node-a, URI:spiffe://edge-tunnel/edge/node-a', 'same names');
      assert.match(read(join(paths.cloudDir, 'tls.crt')).subjectAltName ?? '', /DNS:cloud\.example/);
      await finishRollover(dir);
      assert.equal(blocks(paths.ca), 1);
      assert.equal(read(paths.ca).fingerprint256, next.fingerprint256, 'the next CA is the CA');
      assert.equal(read(join(dir, 'ca-retired.crt')).fingerprint256, oldCa.fingerprint256);
      assert.equal(blocks(join(paths.edgeDir('node-a'), 'ca.crt')), 1, 'the old CA is trusted no more');
      // New certificates are signed by the new CA.
      await writeEdgeCertificate(dir, await loadBundleAuthority(dir, 'ca'), 'node-b');
      assert.ok(read(join(paths.edgeDir('node-b'), 'tls.crt')).verify(next.publicKey));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rolls the client CA: the CONNECT listener trusts both, clients re-issued, then the new one alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edge-tunnel-rollover-'));
    try {
      await writeBundle({ out: dir, edgeNodes: [], cloudNames: ['cloud.example'], xdsNames: ['127.0.0.1'] });
      const paths = bundlePaths(dir);
      const blocks = (path: string): number => pemBlocks(readFileSync(path, 'utf8')).length;
      const caBefore = readFileSync(paths.ca, 'utf8');
      await startRollover(dir, 'clientCa');
      assert.equal(blocks(join(paths.cloudDir, 'client-ca.crt')), 2, 'the CONNECT listener trusts both');
      assert.equal(readFileSync(paths.ca, 'utf8'), caBefore, 'the other CA is untouched');
      assert.deepEqual(await reissueAll(dir, 'clientCa'), [paths.client]);
      await finishRollover(dir, 'clientCa');
      assert.equal(blocks(join(paths.cloudDir, 'client-ca.crt')), 1);
      assert.ok(read(paths.client).verify(read(paths.clientCa).publicKey), 'the client is signed by the new client CA');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
