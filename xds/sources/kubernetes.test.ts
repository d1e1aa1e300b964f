import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { Registry } from 'prom-client';
import type { TunnelNode } from '../model/node.js';
import { FakeKubeApi, type FakeNode } from './fake-kube-api.js';
import { BACKOFF_MAX_MS, backoffMs } from './backoff.js';
import { KubernetesNodeSource, type KubernetesNodeSourceOptions } from './kubernetes.js';
import { parseLabelSelector } from './label-selector.js';
import type { TimerFunctions } from './watch-file.js';
import { CapturingLogger } from './testing.js';

// The fake API server is real HTTP on loopback and the client library is the real one; only time is
// fake. Tests wait for network effects by polling with a deadline and move time by advancing the clock.

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------


/** A clock whose timers fire only when the test advances it. */
class FakeClock implements TimerFunctions {
  time = 0;
  private nextId = 1;
  private readonly timers = new Map<number, { due: number; ms: number; callback: () => void }>();
  readonly now = (): number => this.time;
  setTimeout(callback: () => void, ms: number): number {
    const id = this.nextId++;
    this.timers.set(id, { due: this.time + ms, ms, callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    if (typeof handle === 'number') this.timers.delete(handle);
  }
  /** The delays the pending timers were set with. */
  pendingDelays(): number[] {
    return [...this.timers.values()].map((t) => t.ms);
  }
  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const target = this.time + ms;
    for (;;) {
      const next = [...this.timers.entries()].filter(([, t]) => t.due <= target).sort(([, a], [, b]) => a.due - b.due)[0];
      if (next === undefined) break;
      const [id, timer] = next;
      this.timers.delete(id);
      this.time = timer.due;
      timer.callback();
    }
    this.time = target;
  }
}

/** Polls until `probe` returns something other than undefined/false; fails after `timeoutMs`. */
async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const found = registry.getSingleMetric(name);
  assert.ok(found, `metric ${name} is registered`);
  const { values } = await found.get();
  const match = values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value));
  return match?.value ?? 0;
}

const EDGE_LABEL = 'node-role.kubernetes.io/edge';
const DEBOUNCE_MS = 100;
const MAX_DELAY_MS = 700; // differs from every backoff step, so pending timers can be told apart
const STALE_MS = 300_000;

interface NodeSpec {
  labels?: Record<string, string>;
  addresses?: [type: string, address: string][];
  port?: number;
  podCIDRs?: string[];
  podCIDR?: string;
  heartbeat?: string;
}

function kubeNode(name: string, spec: NodeSpec = {}): FakeNode {
  return {
    metadata: { name, labels: spec.labels ?? {} },
    spec: { ...(spec.podCIDRs ? { podCIDRs: spec.podCIDRs } : {}), ...(spec.podCIDR ? { podCIDR: spec.podCIDR } : {}) },
    status: {
      addresses: (spec.addresses ?? []).map(([type, address]) => ({ type, address })),
      daemonEndpoints: { kubeletEndpoint: { Port: spec.port ?? 10250 } },
      conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: spec.heartbeat ?? '2024-01-01T00:00:00Z' }],
    },
  };
}

function tunnelNode(name: string, fields: Partial<TunnelNode> = {}): TunnelNode {
  return { name, addresses: [], kubeletPort: 10250, role: 'cloud', labels: {}, podCIDRs: [], ...fields };
}

interface Harness {
  readonly api: FakeKubeApi;
  readonly clock: FakeClock;
  readonly logger: CapturingLogger;
  readonly registry: Registry;
  readonly deliveries: (readonly TunnelNode[])[];
  readonly source: KubernetesNodeSource;
  /** The last node list delivered. */
  last(): readonly TunnelNode[];
  /** Waits until `count` watch events of `type` have been processed. */
  events(type: string, count: number): Promise<void>;
  /** Waits until a watch is open (the metric says so and the server holds it). */
  watching(): Promise<void>;
}

async function harness(t: TestContext, seed: FakeNode[] = [], options: Partial<KubernetesNodeSourceOptions> = {}): Promise<Harness> {
  const api = await FakeKubeApi.start();
  for (const node of seed) api.put(node);
  const clock = new FakeClock();
  const logger = new CapturingLogger();
  const registry = new Registry();
  const source = new KubernetesNodeSource({
    kubeConfig: api.kubeConfig(),
    logger,
    debounceMs: DEBOUNCE_MS,
    maxDelayMs: MAX_DELAY_MS,
    // Batching of a steady stream has a test of its own; elsewhere each burst is delivered as it settles.
    minIntervalMs: 0,
    staleAfterMs: STALE_MS,
    timers: clock,
    now: clock.now,
    registry,
    ...options,
  });
  t.after(async () => {
    await source.stop();
    await api.close();
  });
  const deliveries: (readonly TunnelNode[])[] = [];
  const h: Harness = {
    api,
    clock,
    logger,
    registry,
    deliveries,
    source,
    last: () => deliveries.at(-1) ?? assert.fail('nothing delivered'),
    events: async (type, count) => {
      await waitFor(`${count} ${type} events`, async () => (await metric(registry, 'xds_kubernetes_watch_events_total', { type })) >= count);
    },
    watching: async () => {
      await waitFor('an open watch', async () => api.openWatches > 0 && (await metric(registry, 'xds_kubernetes_watch_up')) === 1);
    },
  };
  return h;
}

async function started(t: TestContext, seed: FakeNode[] = [], options: Partial<KubernetesNodeSourceOptions> = {}): Promise<Harness> {
  const h = await harness(t, seed, options);
  await h.source.start((nodes) => h.deliveries.push(nodes));
  await h.watching();
  return h;
}

const isBackoff = (ms: number): boolean => ms >= 1000 && ms <= BACKOFF_MAX_MS && ms !== MAX_DELAY_MS && ms !== DEBOUNCE_MS;

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

describe('parseLabelSelector', () => {
  test('matches the equality-based forms, comma meaning AND', () => {
    const labels = { 'node-role.kubernetes.io/edge': '', 'openyurt.io/is-edge-worker': 'true', zone: 'a' };
    const matches = (selector: string, l: Record<string, string> = labels): boolean => parseLabelSelector(selector).matches(l);
    assert.equal(matches('node-role.kubernetes.io/edge'), true);
    assert.equal(matches('openyurt.io/is-edge-worker=true'), true);
    assert.equal(matches('openyurt.io/is-edge-worker==true'), true);
    assert.equal(matches('openyurt.io/is-edge-worker=false'), false);
    assert.equal(matches('zone!=b'), true);
    assert.equal(matches('zone!=a'), false);
    assert.equal(matches('rack!=r1'), true, 'a missing label matches !=, as in Kubernetes');
    assert.equal(matches('!rack'), true);
    assert.equal(matches('!zone'), false);
    assert.equal(matches('node-role.kubernetes.io/edge=', labels), true, 'an empty value matches an empty label');
    assert.equal(matches(' zone = a , !rack '), true, 'whitespace around tokens is allowed');
    assert.equal(matches('zone=a,rack'), false);
  });

  test('refuses set-based and malformed selectors with a clear error', () => {
    const cases: [string, RegExp][] = [
      ['zone in (a,b)', /set-based requirements/],
      ['zone notin (a)', /set-based requirements/],
      ['zone in a', /set-based requirements/],
      ['(zone)', /set-based requirements/],
      ['', /it is empty/],
      ['   ', /it is empty/],
      ['zone=a,', /empty requirement/],
      ['zone a', /"zone a" is not a requirement/],
      ['=a', /no key/],
      ['Bad_Prefix.io/x', /key prefix "Bad_Prefix.io"/],
      ['-zone', /key name "-zone"/],
      [`zone=${'v'.repeat(64)}`, /the value "v+" must be/],
      ['zone>1', /"<" and ">"/],
    ];
    for (const [selector, expected] of cases) {
      assert.throws(() => parseLabelSelector(selector), (error: Error) => {
        assert.match(error.message, expected, `selector "${selector}"`);
        assert.ok(error.message.startsWith(`invalid label selector "${selector}"`), error.message);
        return true;
      });
    }
  });

  test('the source refuses an unsupported edge selector at construction', async () => {
    const api = await FakeKubeApi.start();
    try {
      assert.throws(
        () => new KubernetesNodeSource({ kubeConfig: api.kubeConfig(), logger: new CapturingLogger(), edgeSelector: 'tier in (edge)' }),
        /invalid label selector "tier in \(edge\)": set-based/,
      );
    } finally {
      await api.close();
    }
  });
});

test('backoff doubles from 1 s and stops at 30 s', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 20].map(backoffMs), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

// ---------------------------------------------------------------------------------------------
// The source
// ---------------------------------------------------------------------------------------------

describe('KubernetesNodeSource', () => {
  test('delivers the initial list once, projected, then watches from its resourceVersion', async (t) => {
    const h = await started(t, [
      kubeNode('edge-a', {
        labels: { [EDGE_LABEL]: '', zone: 'a' },
        addresses: [
          ['Hostname', 'edge-a'],
          ['ExternalIP', '203.0.113.7'],
          ['InternalIP', '10.0.0.7'],
          ['InternalIP', 'fd00::7'],
          ['ExternalIP', '10.0.0.7'], // the same address under two types is listed once
          ['InternalDNS', 'edge-a.internal'], // not a type we dial
        ],
        port: 0,
        podCIDRs: ['10.244.1.0/24', 'fd00:244:1::/64'],
      }),
      kubeNode('cloud-b', { port: 10260, podCIDR: '10.244.2.0/24', addresses: [['InternalIP', '10.0.0.8']] }),
      { metadata: { name: 'bare-c' } },
    ]);
    assert.equal(h.deliveries.length, 1);
    assert.deepEqual(h.last(), [
      tunnelNode('bare-c'),
      tunnelNode('cloud-b', { addresses: ['10.0.0.8'], kubeletPort: 10260, podCIDRs: ['10.244.2.0/24'] }),
      tunnelNode('edge-a', {
        addresses: ['10.0.0.7', 'fd00::7', '203.0.113.7', 'edge-a'],
        role: 'edge',
        labels: { [EDGE_LABEL]: '', zone: 'a' },
        podCIDRs: ['10.244.1.0/24', 'fd00:244:1::/64'],
      }),
    ]);
    const [watch] = h.api.watchRequests();
    assert.equal(watch?.get('resourceVersion'), h.api.resourceVersion);
    assert.equal(watch?.get('allowWatchBookmarks'), 'true');
    assert.equal(await metric(h.registry, 'xds_kubernetes_relists_total', { reason: 'initial' }), 1);
    assert.equal(await metric(h.registry, 'xds_kubernetes_watch_up'), 1);
  });

  test('OpenYurt and other selectors decide the role', async (t) => {
    const h = await started(
      t,
      [
        kubeNode('yurt-1', { labels: { 'openyurt.io/is-edge-worker': 'true' } }),
        kubeNode('yurt-2', { labels: { 'openyurt.io/is-edge-worker': 'false' } }),
        kubeNode('plain', { labels: { [EDGE_LABEL]: '' } }),
      ],
      { edgeSelector: 'openyurt.io/is-edge-worker=true' },
    );
    assert.deepEqual(
      h.last().map((n) => [n.name, n.role]),
      [
        ['plain', 'cloud'],
        ['yurt-1', 'edge'],
        ['yurt-2', 'cloud'],
      ],
    );
  });

  test('nothing is delivered before the initial list is in; start resolves after the first delivery', async (t) => {
    const h = await harness(t, [kubeNode('n1')]);
    let release!: () => void;
    h.api.listGate = new Promise((resolve) => (release = resolve));
    let resolved = false;
    const starting = h.source.start((nodes) => h.deliveries.push(nodes)).then(() => (resolved = true));
    await waitFor('the list request', () => h.api.listRequests().length === 1);
    // Time passing changes nothing either: no debounce can fire before the list.
    h.clock.advance(MAX_DELAY_MS * 2);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(h.deliveries.length, 0);
    assert.equal(resolved, false);
    release();
    await starting;
    assert.deepEqual(h.deliveries, [[tunnelNode('n1')]]);
  });

  test('an empty cluster delivers an empty list', async (t) => {
    const h = await started(t);
    assert.deepEqual(h.deliveries, [[]]);
  });

  test('a status-only update (heartbeat) delivers nothing', async (t) => {
    const h = await started(t, [kubeNode('n1', { heartbeat: 't1' })]);
    h.api.put(kubeNode('n1', { heartbeat: 't2' }));
    h.api.put(kubeNode('n1', { heartbeat: 't3' }));
    await h.events('MODIFIED', 2);
    assert.deepEqual(h.clock.pendingDelays(), [STALE_MS], 'no debounce is pending');
    h.clock.advance(MAX_DELAY_MS);
    assert.equal(h.deliveries.length, 1);
  });

  test('address, label (edge → cloud), add and delete changes are each delivered', async (t) => {
    const edge = { labels: { [EDGE_LABEL]: '' }, addresses: [['InternalIP', '10.0.0.1']] as [string, string][] };
    const h = await started(t, [kubeNode('n1', edge)]);
    assert.equal(h.last()[0]?.role, 'edge');

    h.api.put(kubeNode('n1', { ...edge, addresses: [['InternalIP', '10.0.0.2']] }));
    await h.events('MODIFIED', 1);
    h.clock.advance(DEBOUNCE_MS);
    assert.deepEqual(h.last()[0]?.addresses, ['10.0.0.2']);

    h.api.put(kubeNode('n1', { addresses: [['InternalIP', '10.0.0.2']] }));
    await h.events('MODIFIED', 2);
    h.clock.advance(DEBOUNCE_MS);
    assert.equal(h.last()[0]?.role, 'cloud');
    assert.deepEqual(h.last()[0]?.labels, {});

    h.api.put(kubeNode('n2'));
    await h.events('ADDED', 1);
    h.clock.advance(DEBOUNCE_MS);
    assert.deepEqual(
      h.last().map((n) => n.name),
      ['n1', 'n2'],
    );

    h.api.remove('n1');
    await h.events('DELETED', 1);
    h.clock.advance(DEBOUNCE_MS);
    assert.deepEqual(
      h.last().map((n) => n.name),
      ['n2'],
    );
    assert.equal(h.deliveries.length, 5);
  });

  test('a burst is batched into one delivery, and a busy stream still delivers by maxDelayMs', async (t) => {
    const h = await started(t, [kubeNode('n1')]);
    h.api.put(kubeNode('n2'));
    h.api.put(kubeNode('n3'));
    h.api.remove('n1');
    h.api.put(kubeNode('n2', { port: 10255 }));
    await h.events('MODIFIED', 1);
    h.clock.advance(DEBOUNCE_MS - 1);
    assert.equal(h.deliveries.length, 1, 'still within the debounce');
    h.clock.advance(1);
    assert.equal(h.deliveries.length, 2);
    assert.deepEqual(h.last(), [tunnelNode('n2', { kubeletPort: 10255 }), tunnelNode('n3')]);

    // A change every 60 ms keeps resetting the 100 ms debounce; the max delay cuts in at 700 ms.
    const burstStart = h.clock.time;
    for (let i = 1; i <= 12; i++) {
      h.api.put(kubeNode('n3', { port: 11000 + i }));
      await h.events('MODIFIED', 1 + i);
      h.clock.advance(60);
      if (h.deliveries.length > 2) break;
    }
    assert.equal(h.deliveries.length, 3);
    const elapsed = h.clock.time - burstStart;
    assert.ok(elapsed >= MAX_DELAY_MS && elapsed < MAX_DELAY_MS + 60, `delivered within ${elapsed} ms`);
    assert.equal(h.last().find((n) => n.name === 'n3')?.kubeletPort, 11000 + Math.ceil(MAX_DELAY_MS / 60));
  });

  test('a steady stream of changes goes out in batches at least minIntervalMs apart, the newest state last', async (t) => {
    const h = await started(t, [kubeNode('n1')], { debounceMs: 10, maxDelayMs: 50, minIntervalMs: 300 });
    const deliveredAt: number[] = [];
    for (let i = 1; i <= 30; i++) {
      h.api.put(kubeNode('n1', { port: 11000 + i }));
      await h.events('MODIFIED', i);
      const before = h.deliveries.length;
      h.clock.advance(40);
      if (h.deliveries.length > before) deliveredAt.push(h.clock.time);
    }
    h.clock.advance(300);
    // 30 changes over 1.2 s: a handful of deliveries, not 30, each one the interval after the last.
    assert.ok(deliveredAt.length >= 3 && deliveredAt.length <= 5, `${deliveredAt.length} deliveries during the stream`);
    // Seen at the 40 ms steps the clock moves by: a delivery may show up to 40 ms after it happened.
    for (let i = 1; i < deliveredAt.length; i++) assert.ok(deliveredAt[i] - deliveredAt[i - 1] > 300 - 40, `deliveries seen at ${deliveredAt.join(', ')} ms`);
    assert.equal(h.last().find((n) => n.name === 'n1')?.kubeletPort, 11030);
  });

  test('a change and its undoing within the debounce deliver nothing', async (t) => {
    const h = await started(t, [kubeNode('n1')]);
    h.api.put(kubeNode('n1', { port: 10255 }));
    h.api.put(kubeNode('n1'));
    await h.events('MODIFIED', 2);
    h.clock.advance(MAX_DELAY_MS);
    assert.equal(h.deliveries.length, 1);
  });

  test('410 Gone on the watch relists, and a node deleted meanwhile disappears', async (t) => {
    const h = await started(t, [kubeNode('n1'), kubeNode('n2')]);
    h.api.remove('n2', { silently: true });
    h.api.failWatches(410);
    await waitFor('a relist', async () => (await metric(h.registry, 'xds_kubernetes_relists_total', { reason: 'gone' })) === 1);
    await h.watching();
    h.clock.advance(DEBOUNCE_MS);
    assert.deepEqual(h.last(), [tunnelNode('n1')]);
    assert.equal(h.api.watchRequests().at(-1)?.get('resourceVersion'), h.api.resourceVersion, 'the new watch starts at the new list');
    assert.equal(await metric(h.registry, 'xds_kubernetes_relists_total', { reason: 'error' }), 0);
    assert.deepEqual(h.logger.text('warn'), [], '410 is routine, not a failure');
  });

  test('a closed watch resumes from the last resourceVersion (bookmarks too) without a relist, losing nothing', async (t) => {
    const h = await started(t, [kubeNode('n1')]);
    h.api.bookmark();
    await h.events('BOOKMARK', 1);
    const bookmarkRv = h.api.resourceVersion;
    h.api.endWatches();
    h.api.put(kubeNode('n2')); // lands while no watch is open; the resumed watch replays it
    await h.events('ADDED', 1);
    h.clock.advance(DEBOUNCE_MS);
    assert.deepEqual(
      h.last().map((n) => n.name),
      ['n1', 'n2'],
    );
    assert.equal(h.api.watchRequests()[1]?.get('resourceVersion'), bookmarkRv);
    assert.equal(h.api.listRequests().length, 1);
    assert.equal(await metric(h.registry, 'xds_kubernetes_watch_events_total', { type: 'ADDED' }), 1, 'n2 applied once');
  });

  test('a watch that cannot resume (history compacted) relists', async (t) => {
    const h = await started(t, [kubeNode('n1')]);
    h.api.put(kubeNode('n1', { port: 10255 }));
    await h.events('MODIFIED', 1);
    h.api.compact();
    h.api.endWatches();
    await waitFor('a relist', async () => (await metric(h.registry, 'xds_kubernetes_relists_total', { reason: 'gone' })) === 1);
    await h.watching();
    h.clock.advance(DEBOUNCE_MS);
    assert.deepEqual(h.last(), [tunnelNode('n1', { kubeletPort: 10255 })]);
    assert.equal(h.deliveries.length, 2);
  });

  test('the API server going down: backoff 1 s → 30 s, logged once per failure, reported after 60 s, then a resync', async (t) => {
    const h = await started(t, [kubeNode('n1'), kubeNode('n2')]);
    await h.api.goDown();
    await waitFor('the watch to drop', async () => (await metric(h.registry, 'xds_kubernetes_watch_up')) === 0);
    assert.equal(h.source.problem(), undefined, 'a failure younger than 60 s is not reported yet');
    h.api.remove('n2');
    h.api.put(kubeNode('n3'));

    // Record seven backoff sleeps; the last one is left pending while the server comes back.
    const delays: number[] = [];
    for (;;) {
      const delay = await waitFor('a backoff timer', () => h.clock.pendingDelays().find(isBackoff));
      delays.push(delay);
      if (delays.length === 7) break;
      h.clock.advance(delay);
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    // 61 s of failures by now: past the 60 s after which readiness reports the source.
    assert.match(h.source.problem() ?? '(none)', /^the Nodes list\/watch has been failing for 6\d s: .*ECONNREFUSED/);
    const warnings = h.logger.text('warn');
    assert.ok(warnings.length >= 1 && warnings.length <= 2, `one warning per kind of failure, not per retry:\n${warnings.join('\n')}`);
    assert.ok(warnings.some((w) => w.includes('ECONNREFUSED')), warnings.join('\n'));
    assert.equal(h.deliveries.length, 1, 'the last good nodes stay while the API is away');
    assert.ok((await metric(h.registry, 'xds_kubernetes_relists_total', { reason: 'error' })) >= 5);

    await h.api.comeBack();
    h.clock.advance(30_000);
    await h.watching();
    h.clock.advance(DEBOUNCE_MS);
    assert.deepEqual(
      h.last().map((n) => n.name),
      ['n1', 'n3'],
    );

    // The first event proves the watch healthy: recovery is logged once and the backoff is reset.
    h.api.put(kubeNode('n4'));
    await h.events('ADDED', 1);
    assert.equal(h.source.problem(), undefined, 'healthy again');
    assert.equal(h.logger.text('info').filter((i) => i.includes('healthy again')).length, 1);
    h.api.endWatches();
    await h.watching();
    assert.equal(h.logger.text('warn').length, warnings.length, 'nothing more to warn about');
  });

  test('a watch refused every time (HTTP 403) is retried with growing backoff and logged once', async (t) => {
    const h = await started(t, [kubeNode('n1')]);
    h.api.watchStatus = 403;
    h.api.endWatches();
    const delays: number[] = [];
    while (delays.length < 4) {
      const delay = await waitFor('a backoff timer', () => h.clock.pendingDelays().find(isBackoff));
      delays.push(delay);
      h.clock.advance(delay);
    }
    // The first close is clean (a resume, after a short backoff); then each 403 relists.
    assert.deepEqual(delays, [1000, 2000, 4000, 8000]);
    await waitFor('three relists', async () => (await metric(h.registry, 'xds_kubernetes_relists_total', { reason: 'error' })) >= 3);
    const warnings = h.logger.text('warn');
    assert.equal(warnings.filter((w) => w.includes('HTTP 403')).length, 1, warnings.join('\n'));
    assert.equal(h.deliveries.length, 1, 'unchanged relists deliver nothing');
  });

  test('410 Gone on every watch, even from a fresh list, backs off instead of relisting in a loop', async (t) => {
    const h = await started(t, [kubeNode('n1')]);
    h.api.watchStatus = 410;
    h.api.failWatches(410);
    const delays: number[] = [];
    while (delays.length < 3) {
      const delay = await waitFor('a backoff timer', () => h.clock.pendingDelays().find(isBackoff));
      delays.push(delay);
      h.clock.advance(delay);
    }
    assert.deepEqual(delays, [1000, 2000, 4000]);
    const warnings = h.logger.text('warn');
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0] ?? '', /410 Gone again/);
    await waitFor('four relists', async () => (await metric(h.registry, 'xds_kubernetes_relists_total', { reason: 'gone' })) >= 4);
  });

  test('no event and no list for staleAfterMs: the watch is replaced by a relist, counted', async (t) => {
    const h = await started(t, [kubeNode('n1')]);
    h.clock.advance(STALE_MS - 1);
    assert.equal(await metric(h.registry, 'xds_kubernetes_relists_total', { reason: 'stale' }), 0);
    h.clock.advance(1);
    await waitFor('a stale relist', async () => (await metric(h.registry, 'xds_kubernetes_relists_total', { reason: 'stale' })) === 1);
    await waitFor('a second watch', () => h.api.watchRequests().length === 2 && h.api.openWatches === 1);
    assert.equal(h.api.listRequests().length, 2);
    assert.equal(h.deliveries.length, 1, 'nothing changed, nothing delivered');

    // An event resets the clock: staleness counts from it.
    h.clock.advance(STALE_MS / 2);
    h.api.put(kubeNode('n1', { heartbeat: 'later' }));
    await h.events('MODIFIED', 1);
    h.clock.advance(STALE_MS / 2 + 1);
    assert.equal(await metric(h.registry, 'xds_kubernetes_relists_total', { reason: 'stale' }), 1);
    const age = await metric(h.registry, 'xds_kubernetes_last_event_age_seconds');
    assert.ok(Math.abs(age - (STALE_MS / 2 + 1) / 1000) < 1e-9, `age ${age}`);
  });

  test('lists in pages, and restarts unpaged when a continue token expires', async (t) => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    const h = await harness(t, names.map((name) => kubeNode(name)), { listPageSize: 2 });
    await h.source.start((nodes) => h.deliveries.push(nodes));
    assert.deepEqual(
      h.last().map((n) => n.name),
      names,
    );
    assert.deepEqual(
      h.api.listRequests().map((q) => [q.get('limit'), q.get('continue')]),
      [
        ['2', null],
        ['2', '105:2'],
        ['2', '105:4'],
      ],
    );

    h.api.expireNextContinue = true;
    h.api.remove('c', { silently: true });
    h.api.failWatches(410);
    await waitFor('a relist', async () => (await metric(h.registry, 'xds_kubernetes_relists_total', { reason: 'gone' })) === 1);
    await h.watching();
    h.clock.advance(DEBOUNCE_MS);
    assert.deepEqual(
      h.last().map((n) => n.name),
      ['a', 'b', 'd', 'e'],
    );
    assert.deepEqual(
      h.api.listRequests().slice(3).map((q) => [q.get('limit'), q.get('continue')]),
      [
        ['2', null],
        ['2', '106:2'],
        [null, null],
      ],
    );
  });

  test('stop aborts the watch and every timer, and nothing is delivered after it', async (t) => {
    const h = await started(t, [kubeNode('n1')]);
    h.api.put(kubeNode('n2'));
    await h.events('ADDED', 1);
    assert.ok(h.clock.pendingDelays().includes(DEBOUNCE_MS));
    await h.source.stop();
    assert.deepEqual(h.clock.pendingDelays(), []);
    assert.equal(await metric(h.registry, 'xds_kubernetes_watch_up'), 0);
    await waitFor('the server to see the watch closed', () => h.api.openWatches === 0);
    h.clock.advance(STALE_MS * 2);
    assert.equal(h.deliveries.length, 1);
    assert.equal(h.api.watchRequests().length, 1, 'no new watch after stop');
  });

  test('stop before the first list rejects start', async (t) => {
    const h = await harness(t, [kubeNode('n1')]);
    h.api.listGate = new Promise(() => undefined);
    const starting = h.source.start((nodes) => h.deliveries.push(nodes));
    await waitFor('the list request', () => h.api.listRequests().length === 1);
    await h.source.stop();
    await assert.rejects(starting, /stopped before the first list/);
    assert.equal(h.deliveries.length, 0);
  });
});
