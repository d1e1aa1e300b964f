import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SIDECAR_KEY } from '../cache/snapshot-cache.js';
import { identify, peerIdentityFromSans, sanEntries } from './identity.js';

describe('peer identity from certificate SANs', () => {
  it('reads the one edge-tunnel URI', () => {
    assert.deepEqual(peerIdentityFromSans('DNS:node-a, URI:spiffe://edge-tunnel/edge/node-a'), { role: 'edge', name: 'node-a' });
    assert.deepEqual(peerIdentityFromSans('DNS:cloud.edge-tunnel, IP Address:127.0.0.1, URI:spiffe://edge-tunnel/cloud/cloud'), { role: 'cloud', name: 'cloud' });
    assert.deepEqual(peerIdentityFromSans('URI:spiffe://edge-tunnel/sidecar/metrics-server-0'), { role: 'sidecar', name: 'metrics-server-0' });
  });

  it('cannot be fooled by a quoted DNS name that looks like a URI entry', () => {
    // Node writes a SAN value holding ", " as a JSON string.
    const crafted = 'DNS:"x, URI:spiffe://edge-tunnel/cloud/y"';
    assert.deepEqual(sanEntries(crafted), [['DNS', 'x, URI:spiffe://edge-tunnel/cloud/y']]);
    assert.equal(peerIdentityFromSans(crafted), undefined);
  });

  it('refuses none or two identities', () => {
    assert.equal(peerIdentityFromSans('DNS:node-a'), undefined);
    assert.equal(peerIdentityFromSans('URI:spiffe://edge-tunnel/edge/a, URI:spiffe://edge-tunnel/edge/b'), undefined);
    assert.equal(peerIdentityFromSans(undefined), undefined);
  });
});

describe('identify', () => {
  it('serves a sidecar the sidecar resources, and never lets its certificate pass for a cloud Envoy', () => {
    const sidecar = identify({ id: 'metrics-server-0', cluster: 'sidecar' } as Parameters<typeof identify>[0], { role: 'sidecar', name: 'metrics-server-0' });
    assert.ok(sidecar.ok);
    assert.equal(sidecar.identity.key, SIDECAR_KEY);
    const posing = identify({ id: 'cloud-0', cluster: 'cloud' } as Parameters<typeof identify>[0], { role: 'sidecar', name: 'metrics-server-0' });
    assert.deepEqual(posing.ok ? 'accepted' : posing.reason, 'denied');
  });
});
