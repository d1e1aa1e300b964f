import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { edgeRequest, writeTlsDir } from '../certs/bundle.js';
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

describe('durations', () => {
  it('reads seconds, minutes, hours and days, and refuses anything else', () => {
    assert.deepEqual(['30', '30s', '10m', '24h', '7d'].map((d) => durationSeconds('x', d)), [30, 30, 600, 86_400, 604_800]);
    for (const bad of ['', '0s', '1.5h', '-1m', '3w']) assert.throws(() => durationSeconds('lifetime', bad), /--lifetime: ".*" is not a duration/);
  });
});
