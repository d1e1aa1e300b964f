import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { edgeRequest, publishTlsFiles, writeTlsDir } from '../certs/bundle.js';
import { createAuthority, issue } from '../certs/issue.js';
import { durationSeconds } from '../xds/cli/args.js';
import { renewalDue } from './certificate-agent.js';

describe('certificate agent: when to renew', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is due at once without a certificate, or with one for another node', async () => {
    assert.equal(renewalDue(join(dir, 'none'), 'edge-a'), 0);
    const ca = await createAuthority('test CA');
    writeTlsDir(join(dir, 'other'), await issue(ca, edgeRequest('edge-b')), {});
    assert.equal(renewalDue(join(dir, 'other'), 'edge-a'), 0);
  });

  it('is due two thirds into the lifetime of the node\'s own certificate', async () => {
    const ca = await createAuthority('test CA');
    const notBefore = new Date('2026-12-01T00:00:00Z');
    const notAfter = new Date('2026-12-01T03:00:00Z');
    writeTlsDir(join(dir, 'own'), await issue(ca, { ...edgeRequest('edge-a'), notBefore, notAfter }), {});
    assert.equal(renewalDue(join(dir, 'own'), 'edge-a'), Date.parse('2026-12-01T02:00:00Z'));
  });
});

describe('publishing a certificate directory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'publish-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('switches every file at once through ..data, keeps modes, and leaves one version behind', () => {
    publishTlsFiles(dir, { 'tls.key': { content: 'key 1', mode: 0o640 }, 'tls.crt': { content: 'cert 1', mode: 0o644 } });
    publishTlsFiles(dir, { 'tls.key': { content: 'key 2', mode: 0o640 }, 'tls.crt': { content: 'cert 2', mode: 0o644 } });
    assert.equal(readFileSync(join(dir, 'tls.key'), 'utf8'), 'key 2');
    assert.equal(readFileSync(join(dir, 'tls.crt'), 'utf8'), 'cert 2');
    assert.equal(readlinkSync(join(dir, 'tls.key')), '..data/tls.key');
    assert.equal(statSync(join(dir, 'tls.key')).mode & 0o777, 0o640);
    const versions = readdirSync(dir).filter((e) => e.startsWith('..') && e !== '..data');
    assert.equal(versions.length, 1);
    assert.equal(readlinkSync(join(dir, '..data')), versions[0]);
  });
});

describe('durations', () => {
  it('reads seconds, minutes, hours and days, and refuses anything else', () => {
    assert.deepEqual(['30', '30s', '10m', '24h', '7d'].map((d) => durationSeconds('x', d)), [30, 30, 600, 86_400, 604_800]);
    for (const bad of ['', '0s', '1.5h', '-1m', '3w']) assert.throws(() => durationSeconds('lifetime', bad), /--lifetime: ".*" is not a duration/);
  });
});
