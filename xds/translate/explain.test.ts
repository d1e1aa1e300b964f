import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TunnelNode } from '../model/node.js';
import { DEFAULT_SETTINGS, type Settings } from '../model/settings.js';
import { explainRoute } from './explain.js';
import { translate } from './translate.js';

const node = (name: string, fields: Partial<TunnelNode> = {}): TunnelNode => ({ name, addresses: [], kubeletPort: 10250, role: 'edge', labels: {}, podCIDRs: [], ...fields });

const NODES: TunnelNode[] = [
  node('edge-a', { addresses: ['192.0.2.11'], podCIDRs: ['10.244.1.0/24'], createdAt: '2026-01-01T00:00:00Z' }),
  node('thief', { addresses: ['192.0.2.11', '192.0.2.99', 'bad_host'], createdAt: '2026-06-01T00:00:00Z' }),
  node('cp-1', { role: 'cloud', addresses: ['10.0.0.5', 'cp-1.internal'], podCIDRs: ['10.100.0.0/24'] }),
];

function explain(target: string, settings: Partial<Settings> = {}): ReturnType<typeof explainRoute> {
  const all = { ...DEFAULT_SETTINGS, podPorts: [8443], serviceCIDRs: ['10.96.0.0/12'], ...settings };
  const translation = translate(NODES, all);
  assert.ok(translation.ok);
  return explainRoute(translation.admission, all, target);
}

describe('xds route: where a CONNECT goes', () => {
  it('sends a node name or address on an allowed port down that node\'s tunnel', () => {
    assert.deepEqual(explain('edge-a:10250'), { verdict: 'tunnel', node: 'edge-a', match: 'the name of edge node edge-a' });
    assert.deepEqual(explain('192.0.2.11:10255'), { verdict: 'tunnel', node: 'edge-a', match: 'an address of edge node edge-a' });
    assert.deepEqual(explain('EDGE-A:10250'), { verdict: 'tunnel', node: 'edge-a', match: 'the name of edge node edge-a' });
  });

  it('refuses a port off the node\'s allowlist, saying which are allowed', () => {
    assert.deepEqual(explain('edge-a:22'), { verdict: 'refused', reason: 'port 22 is not allowed on edge node edge-a (allowed: 10250, 10255)' });
  });

  it('sends an edge pod IP on a pod port down its node\'s tunnel, and refuses other ports', () => {
    assert.deepEqual(explain('10.244.1.7:8443'), { verdict: 'tunnel', node: 'edge-a', match: 'the pod CIDR 10.244.1.0/24 of edge node edge-a' });
    assert.deepEqual(explain('10.244.1.7:22'), { verdict: 'refused', reason: 'port 22 is not allowed in the pod CIDR 10.244.1.0/24 of edge node edge-a (allowed: 8443)' });
  });

  it('dials cloud destinations directly: Service CIDRs, cloud pods and nodes, cloud node names', () => {
    assert.deepEqual(explain('10.96.0.10:443'), { verdict: 'direct', dial: '10.96.0.10:443', match: 'Service CIDR 10.96.0.0/12' });
    assert.deepEqual(explain('10.100.0.9:9090'), { verdict: 'direct', dial: '10.100.0.9:9090', match: 'pods of cloud node cp-1 10.100.0.0/24' });
    assert.deepEqual(explain('10.0.0.5:4443'), { verdict: 'direct', dial: '10.0.0.5:4443', match: 'cloud node cp-1 10.0.0.5/32' });
    assert.deepEqual(explain('cp-1.internal:10250'), { verdict: 'direct', dial: '10.0.0.5:10250', match: 'the name of cloud node cp-1' });
  });

  it('refuses cloud destinations when they are refused by setting', () => {
    assert.match(explain('10.96.0.10:443', { cloudDestinations: 'refuse' }).verdict, /refused/);
    assert.deepEqual(explain('10.96.0.10:443', { cloudDestinations: 'refuse' }), {
      verdict: 'refused',
      reason: "10.96.0.10 is in the cluster's cloud ranges, and cloud destinations are refused (--cloud-destinations refuse)",
    });
  });

  it('explains a contested address with the refusal, and anything else as unknown', () => {
    assert.deepEqual(explain('192.0.2.99:10250'), { verdict: 'tunnel', node: 'thief', match: 'an address of edge node thief' });
    assert.deepEqual(explain('bad_host:10250'), { verdict: 'refused', reason: 'thief.addresses[2]: "bad_host" is not an IP address or host name: dropped' });
    const outside = explain('203.0.113.7:443');
    assert.equal(outside.verdict, 'refused');
    assert.match(outside.verdict === 'refused' ? outside.reason : '', /no edge node's name or address/);
    assert.deepEqual(explain('[2001:db8::1]:10250'), { verdict: 'refused', reason: 'IPv6 destinations are not routed' });
    assert.deepEqual(explain('nonsense'), { verdict: 'refused', reason: '"nonsense" is not HOST:PORT' });
  });
});
