import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { XdsType } from '../../envoy/xds-types.js';
import { CLOUD_KEY, SnapshotCache, edgeKey } from '../cache/snapshot-cache.js';
import type { TunnelNode } from '../model/node.js';
import { DEFAULT_SETTINGS } from '../model/settings.js';
import { ControlPlane, controlPlaneMetrics } from './control-plane.js';

function capturingLogger(): { logger: pino.Logger; lines: () => { level: number; msg: string }[] } {
  const chunks: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => void (chunks.push(chunk.toString()), done()) });
  const logger = pino({ level: 'debug' }, sink);
  return { logger, lines: () => chunks.join('').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string }) };
}

const node = (name: string): TunnelNode => ({ name, addresses: [], kubeletPort: 10250, role: 'edge', labels: {}, podCIDRs: [] });

describe('ControlPlane', () => {
  it('publishes good nodes and reports the skipped ones', () => {
    const cache = new SnapshotCache();
    const { logger, lines } = capturingLogger();
    const plane = new ControlPlane(cache, DEFAULT_SETTINGS, logger, controlPlaneMetrics(new Registry()));
    assert.equal(plane.update([node('node-a'), node('Bad_Name')]), true);
    assert.ok(cache.current(edgeKey('node-a'), XdsType.listener).resources.has('reverse_tunnel'));
    assert.ok(lines().some((l) => l.msg.includes('nodes[1].name: "Bad_Name"')));
  });

  it('keeps the last good configuration when the settings are invalid', () => {
    const cache = new SnapshotCache();
    const { logger } = capturingLogger();
    const good = new ControlPlane(cache, DEFAULT_SETTINGS, logger, controlPlaneMetrics(new Registry()));
    good.update([node('node-a')]);
    const before = cache.current(CLOUD_KEY, XdsType.route).version;
    const bad = new ControlPlane(cache, { ...DEFAULT_SETTINGS, tunnelsPerCloud: 0 }, logger, controlPlaneMetrics(new Registry()));
    assert.equal(bad.update([node('node-b')]), false);
    assert.equal(cache.current(CLOUD_KEY, XdsType.route).version, before);
  });

  it('warns when a cloud Envoy has more workers than tunnels per edge', () => {
    const { logger, lines } = capturingLogger();
    const plane = new ControlPlane(new SnapshotCache(), DEFAULT_SETTINGS, logger, controlPlaneMetrics(new Registry()));
    plane.checkProxy({ role: 'cloud', id: 'c1', key: CLOUD_KEY, concurrency: DEFAULT_SETTINGS.tunnelsPerCloud });
    assert.equal(lines().length, 0);
    plane.checkProxy({ role: 'cloud', id: 'c2', key: CLOUD_KEY, concurrency: DEFAULT_SETTINGS.tunnelsPerCloud + 2 });
    assert.match(lines()[0].msg, /raise --tunnels-per-cloud/);
  });
});
