// The snapshot cache on its own: content-hash versions that every replica agrees on, and change
// notifications that reach only the watchers of the keys (and types) that changed.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADS_ORDER, XdsType, type XdsTypeUrl } from '../../envoy/xds-types.js';
import { DEFAULT_SETTINGS } from '../model/settings.js';
import type { TunnelNode } from '../model/node.js';
import { cluster, listener, resourceSet, route, secret, translation } from '../protocol/testing.js';
import { translate, type Translation } from '../translate/translate.js';
import { CLOUD_KEY, SIDECAR_KEY, SnapshotCache, edgeKey, type ProxyKey } from './snapshot-cache.js';
import { EMPTY_TYPE, changedTypes, typeVersion, versionSet } from './snapshot.js';

const A = edgeKey('node-a');
const B = edgeKey('node-b');

/** Cloud plus two edge nodes; `tags` change the bytes of one resource per entry. */
function fleet(tags: { aCluster?: string; aRoute?: string; bListener?: string; cloudRoute?: string } = {}, withB = true): Translation {
  const edges = {
    'node-a': resourceSet({
      [XdsType.cluster]: [cluster('cloud'), cluster('local-10250', tags.aCluster)],
      [XdsType.listener]: [listener('tunnel')],
      [XdsType.route]: [route('local-routes', tags.aRoute)],
    }),
    ...(withB
      ? {
          'node-b': resourceSet({
            [XdsType.cluster]: [cluster('cloud'), cluster('local-10260')],
            [XdsType.listener]: [listener('tunnel', tags.bListener)],
            [XdsType.route]: [route('local-routes', 'b')],
          }),
        }
      : {}),
  };
  const cloud = resourceSet({
    [XdsType.cluster]: [cluster('tunnel')],
    [XdsType.listener]: [listener('handshake'), listener('connect')],
    [XdsType.route]: [route('connect-routes', tags.cloudRoute)],
  });
  return translation(cloud, edges);
}

/** Every (key, type) → version the cache holds. */
function versions(cache: SnapshotCache): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of cache.keys()) for (const type of ADS_ORDER) out[`${key} ${type}`] = cache.current(key, type).version;
  return out;
}

/** Records every notification of the given keys. */
function recorder(cache: SnapshotCache, keys: readonly ProxyKey[]): { calls: [ProxyKey, readonly XdsTypeUrl[]][]; unwatch: Map<ProxyKey, () => void> } {
  const calls: [ProxyKey, readonly XdsTypeUrl[]][] = [];
  const unwatch = new Map(keys.map((key) => [key, cache.watch(key, (types) => calls.push([key, types]))]));
  return { calls, unwatch };
}

describe('snapshot versions', () => {
  it('are the same for the same content, however often and by whichever replica it is published', () => {
    const one = new SnapshotCache();
    const two = new SnapshotCache();
    one.publish(fleet());
    two.publish(fleet()); // freshly packed: equal bytes, different objects
    assert.deepEqual(versions(one), versions(two));
    assert.deepEqual(one.keys(), [CLOUD_KEY, A, B, SIDECAR_KEY]);
    for (const key of [CLOUD_KEY, A, B]) {
      for (const type of [XdsType.cluster, XdsType.listener, XdsType.route]) {
        assert.notEqual(one.current(key, type).version, EMPTY_TYPE.version, `${key} ${type} has resources`);
      }
    }
  });

  it('do not depend on history: a replica that saw earlier content agrees with one that did not', () => {
    const old = new SnapshotCache();
    old.publish(fleet({ aCluster: 'v1', cloudRoute: 'v1' }));
    old.publish(fleet({ aCluster: 'v2', cloudRoute: 'v1' }));
    old.publish(fleet({ aCluster: 'v3', cloudRoute: 'v3' }));
    const fresh = new SnapshotCache();
    fresh.publish(fleet({ aCluster: 'v3', cloudRoute: 'v3' }));
    assert.deepEqual(versions(old), versions(fresh));
  });

  it('do not depend on the order resources arrive in', () => {
    const forward = versionSet(resourceSet({ [XdsType.cluster]: [cluster('a'), cluster('b'), cluster('c')] }));
    const backward = versionSet(resourceSet({ [XdsType.cluster]: [cluster('c'), cluster('b'), cluster('a')] }));
    assert.equal(forward.get(XdsType.cluster)?.version, backward.get(XdsType.cluster)?.version);
  });

  it('change with a resource’s bytes, and only for its type', () => {
    const before = versionSet(resourceSet({ [XdsType.cluster]: [cluster('a')], [XdsType.listener]: [listener('l')] }));
    const after = versionSet(resourceSet({ [XdsType.cluster]: [cluster('a', 'changed')], [XdsType.listener]: [listener('l')] }), before);
    assert.notEqual(after.get(XdsType.cluster)?.version, before.get(XdsType.cluster)?.version);
    assert.equal(after.get(XdsType.listener), before.get(XdsType.listener), 'the unchanged type is the same object');
    assert.deepEqual(changedTypes(before, after), [XdsType.cluster]);
  });

  it('treat a missing type, an empty type and an unknown key alike', () => {
    const missing = versionSet(resourceSet({}));
    const empty = versionSet(resourceSet({ [XdsType.route]: [] }));
    assert.deepEqual(changedTypes(missing, empty), []);
    assert.deepEqual(changedTypes(undefined, empty), []);
    assert.equal(typeVersion([]), EMPTY_TYPE.version);
    assert.equal(new SnapshotCache().current('edge/nobody', XdsType.cluster), EMPTY_TYPE);
  });
});

describe('snapshot cache notifications', () => {
  it('tell only the watchers of the changed edge node, with only the changed types', () => {
    const cache = new SnapshotCache();
    cache.publish(fleet());
    const { calls } = recorder(cache, [CLOUD_KEY, A, B]);
    const other = recorder(cache, [A]);

    const result = cache.publish(fleet({ aRoute: 'new' }));
    assert.deepEqual(calls, [[A, [XdsType.route]]]);
    assert.deepEqual(other.calls, [[A, [XdsType.route]]], 'every watcher of the key hears it');
    assert.deepEqual([...result.changed], [[A, [XdsType.route]]]);
  });

  it('list several changed types in ADS order', () => {
    const cache = new SnapshotCache();
    cache.publish(fleet());
    const { calls } = recorder(cache, [A, B]);
    cache.publish(fleet({ aRoute: 'new', aCluster: 'new' }));
    assert.deepEqual(calls, [[A, [XdsType.cluster, XdsType.route]]]);
  });

  it('tell the watchers of a removed node, with every type it had', () => {
    const cache = new SnapshotCache();
    cache.publish(fleet());
    const { calls } = recorder(cache, [CLOUD_KEY, A, B]);
    const result = cache.publish(fleet({}, false));
    assert.deepEqual(calls, [[B, [XdsType.cluster, XdsType.listener, XdsType.route]]]);
    assert.deepEqual([...result.changed.keys()], [B]);
    assert.deepEqual(cache.keys(), [CLOUD_KEY, A, SIDECAR_KEY]);
    assert.equal(cache.current(B, XdsType.cluster), EMPTY_TYPE);
  });

  it('tell the watchers of a node that appears, even if they watched before it existed', () => {
    const cache = new SnapshotCache();
    cache.publish(fleet({}, false));
    const { calls } = recorder(cache, [B]);
    cache.publish(fleet());
    assert.deepEqual(calls, [[B, [XdsType.cluster, XdsType.listener, XdsType.route]]]);
  });

  it('tell nobody when nothing changed', () => {
    const cache = new SnapshotCache();
    cache.publish(fleet({ aCluster: 'x' }));
    const { calls } = recorder(cache, [CLOUD_KEY, A, B]);
    const result = cache.publish(fleet({ aCluster: 'x' }));
    assert.deepEqual(calls, []);
    assert.equal(result.changed.size, 0);
  });

  it('stop for a watcher that unwatched, and only for it', () => {
    const cache = new SnapshotCache();
    cache.publish(fleet());
    const first = recorder(cache, [A]);
    const second = recorder(cache, [A]);
    first.unwatch.get(A)?.();
    cache.publish(fleet({ aCluster: 'new' }));
    assert.deepEqual(first.calls, []);
    assert.deepEqual(second.calls, [[A, [XdsType.cluster]]]);
    second.unwatch.get(A)?.();
    cache.publish(fleet({ aCluster: 'newer' }));
    assert.equal(second.calls.length, 1);
  });

  // An unwatch called a second time, after its key's last watcher left and a new one came, must not
  // delete the new watcher's listener set.
  it('ignore an unwatch called twice', () => {
    const cache = new SnapshotCache();
    cache.publish(fleet());
    const first = recorder(cache, [A]);
    first.unwatch.get(A)?.();
    const second = recorder(cache, [A]);
    first.unwatch.get(A)?.();
    cache.publish(fleet({ aCluster: 'new' }));
    assert.deepEqual(second.calls, [[A, [XdsType.cluster]]]);
  });

  // publish() replaces the snapshots before notifying: a watcher that throws must not silence the rest.
  it('tell every watcher even when one listener throws', () => {
    const cache = new SnapshotCache();
    cache.publish(fleet());
    cache.watch(A, () => {
      throw new Error('write after end');
    });
    const { calls } = recorder(cache, [B]);
    const { listenerErrors } = cache.publish(fleet({ aCluster: 'new', bListener: 'new' }));
    assert.equal(listenerErrors.length, 1);
    assert.deepEqual(calls, [[B, [XdsType.listener]]]);
  });

  it('leave other nodes alone when translate() changes one node (two nodes through the real translator)', () => {
    const node = (name: string, kubeletPort: number, address: string): TunnelNode => ({ name, addresses: [address], kubeletPort, role: 'edge', labels: {}, podCIDRs: [] });
    const translated = (portA: number): Translation => {
      const t = translate([node('node-a', portA, '10.0.0.1'), node('node-b', 10250, '10.0.0.2')], { ...DEFAULT_SETTINGS, kubeletPorts: 'any' });
      assert.ok(t.ok);
      return t;
    };
    const cache = new SnapshotCache();
    cache.publish(translated(10250));
    const { calls } = recorder(cache, [A, B]);
    const replica = new SnapshotCache();
    replica.publish(translated(10250));
    assert.deepEqual(versions(cache), versions(replica));

    const result = cache.publish(translated(10260));
    assert.ok(result.changed.has(A));
    assert.ok(!result.changed.has(B));
    assert.deepEqual(calls.map(([key]) => key), [A]);
    // The kubelet port lives in the edge's routes (the terminator's authority rewrite).
    assert.notEqual(cache.current(A, XdsType.route).version, replica.current(A, XdsType.route).version);
    assert.equal(cache.current(B, XdsType.route).version, replica.current(B, XdsType.route).version);
  });

  it('notice a secret-only change (types absent before count as empty)', () => {
    const cache = new SnapshotCache();
    cache.publish(translation(resourceSet({ [XdsType.cluster]: [cluster('c')] })));
    const { calls } = recorder(cache, [CLOUD_KEY]);
    cache.publish(translation(resourceSet({ [XdsType.cluster]: [cluster('c')], [XdsType.secret]: [secret('s')] })));
    assert.deepEqual(calls, [[CLOUD_KEY, [XdsType.secret]]]);
  });
});
