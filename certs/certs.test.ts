import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { bundlePaths, loadBundleAuthority, writeBundle, writeEdgeCertificate } from './bundle.js';
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
});
