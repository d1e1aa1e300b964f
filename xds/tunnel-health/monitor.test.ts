import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TunnelHealthMonitor, tunnelStatus, type TunnelStatus } from './monitor.js';

describe('tunnel health', () => {
  it('is ready only when every cloud replica reaches the node', () => {
    assert.deepEqual(tunnelStatus([{ ok: true }, { ok: true }]), { ready: true, reason: 'TunnelsUp', message: 'reachable through 2 cloud Envoy(s)' });
    assert.deepEqual(tunnelStatus([{ ok: true }, { ok: false, reason: 'NoTunnel', message: 'cloud-1 holds no tunnel of a' }]), {
      ready: false,
      reason: 'NoTunnel',
      message: 'cloud-1 holds no tunnel of a',
    });
  });

  it('probes every node through every replica in a round, and reports each', async () => {
    const seen: string[] = [];
    const statuses = new Map<string, TunnelStatus>();
    const monitor = new TunnelHealthMonitor({
      clouds: [{ address: '10.0.0.1', port: 15001 }, { address: '10.0.0.2', port: 15001 }],
      tls: undefined,
      intervalMs: 60_000,
      parallel: 2,
      probe: async (cloud, _tls, node) => {
        seen.push(`${node}@${cloud.address}`);
        return node === 'edge-b' && cloud.address === '10.0.0.2' ? { ok: false, reason: 'NoTunnel', message: `${cloud.address} has none` } : { ok: true };
      },
      onStatus: (node, status) => statuses.set(node, status),
    });
    monitor.setNodes(['edge-a', 'edge-b', 'edge-c']);
    await monitor.round();
    assert.deepEqual(seen.sort(), ['edge-a@10.0.0.1', 'edge-a@10.0.0.2', 'edge-b@10.0.0.1', 'edge-b@10.0.0.2', 'edge-c@10.0.0.1', 'edge-c@10.0.0.2']);
    assert.deepEqual([...statuses].map(([node, s]) => `${node}:${s.ready}:${s.reason}`).sort(), ['edge-a:true:TunnelsUp', 'edge-b:false:NoTunnel', 'edge-c:true:TunnelsUp']);
  });
});
