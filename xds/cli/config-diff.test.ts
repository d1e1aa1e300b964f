import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffConfigs, normalise, rejectedListeners, runningResources, type Json } from './config-diff.js';

describe('xds diff: intended against running', () => {
  it('reads Envoy\'s snake_case and its spelling of defaults as the intent\'s', () => {
    const intended = { name: 'l', streamIdleTimeout: '14400s', delayedCloseTimeout: '0.04s', initialFetchTimeout: {}, ads: {}, typedPerFilterConfig: { 'envoy.filters.http.header_mutation': { x: 1 } } };
    const running = { name: 'l', stream_idle_timeout: '14400s', delayed_close_timeout: '0.040s', initial_fetch_timeout: '0s', port_value: 0, typed_per_filter_config: { 'envoy.filters.http.header_mutation': { x: 1 } } };
    assert.deepEqual(normalise(intended), normalise(running));
  });

  it('finds missing, extra and changed resources, and compares secrets by their data\'s presence only', () => {
    const dump: Json = {
      configs: [
        { dynamic_active_clusters: [{ cluster: { name: 'a', connect_timeout: '5s' } }, { cluster: { name: 'left-over' } }] },
        { dynamic_listeners: [{ name: 'l', active_state: { listener: { name: 'l', address: { socket_address: { address: '127.0.0.1' } } } }, error_state: { details: 'cannot bind' } }] },
        { dynamic_active_secrets: [{ secret: { name: 's', tls_certificate: { private_key: { inline_bytes: 'W3JlZGFjdGVkXQ==' } } } }, { secret: { name: 'xds_client_identity' } }] },
      ],
    };
    const intended: Record<string, Json[]> = {
      Cluster: [{ name: 'a', connectTimeout: '2s' }, { name: 'never-received' }],
      Listener: [{ name: 'l', address: { socketAddress: { address: '127.0.0.1' } } }],
      Secret: [{ name: 's', tlsCertificate: { privateKey: { filename: '/etc/tls/tls.key' } } }],
    };
    const diffs = diffConfigs(intended, runningResources(dump, ['xds_client_identity']));
    assert.deepEqual(diffs.map((d) => [d.type, d.name, d.change]), [
      ['Cluster', 'a', 'changed'],
      ['Cluster', 'left-over', 'extra'],
      ['Cluster', 'never-received', 'missing'],
    ]);
    assert.deepEqual(diffs[0].details, ['connectTimeout: "2s" ≠ "5s"']);
    assert.deepEqual(rejectedListeners(dump), [{ name: 'l', detail: 'cannot bind' }]);
  });
});
