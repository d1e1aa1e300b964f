// Property tests for the nodes file parser: whatever text an editor leaves behind, parseNodesFile must
// return (never throw), every node it returns must be servable as is, and every problem must come with
// a place and a reason. Bounded in time: each property stops after its budget.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { RouteConfiguration } from '../../envoy/generated/envoy/config/route/v3/route.js';
import { XdsType } from '../../envoy/xds-types.js';
import { cleanNode, type TunnelNode } from '../model/node.js';
import { DEFAULT_SETTINGS } from '../model/settings.js';
import { translate } from '../translate/translate.js';
import { CLOUD } from '../translate/names.js';
import { parseNodesFile, type ParsedNodesFile } from './nodes-file.js';

const TIME_LIMIT_MS = 2000;
const options = (numRuns: number): fc.Parameters<unknown> => ({
  numRuns,
  plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)],
});

/** What must hold for any result, whatever the input. */
function assertWellFormed(parsed: ParsedNodesFile): void {
  if (parsed.fatal !== undefined) {
    assert.match(parsed.fatal, /^nodes\.yaml:\d+:\d+: \S/, 'a fatal error names the file, line and column');
    assert.deepEqual(parsed.nodes, [], 'a broken file yields no nodes');
  }
  for (const error of parsed.errors) {
    assert.equal(typeof error.path, 'string');
    assert.equal(typeof error.message, 'string');
    assert.notEqual(error.path.trim(), '', 'an error without a path');
    assert.notEqual(error.message.trim(), '', `an error without a message at ${error.path}`);
    assert.match(error.path, /^nodes\[\d+\] \(line \d+\)/, 'an error path names the entry and its line');
  }
  // What comes out passes the model's own validation unchanged: valid one by one, unique together.
  for (const node of parsed.nodes) assert.deepEqual(cleanNode(node, node.name), { node, errors: [] });
  assert.equal(new Set(parsed.nodes.map((n) => n.name.toLowerCase())).size, parsed.nodes.length, 'names are unique');
  for (const node of parsed.nodes) {
    assert.equal(typeof node.name, 'string');
    assert.ok(node.addresses.every((a) => typeof a === 'string'));
    assert.ok(Object.values(node.labels).every((v) => typeof v === 'string'));
  }
}

function parse(text: string): ParsedNodesFile {
  return parseNodesFile(text, 'nodes.yaml');
}

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?$/);
/** Valid DNS subdomains, short and up to the 253-character maximum. */
const validName = fc.oneof(
  { weight: 4, arbitrary: fc.array(label, { minLength: 1, maxLength: 3 }).map((labels) => labels.join('.')) },
  {
    weight: 1,
    arbitrary: fc.nat({ max: 9 }).map((n) => [`n${n}${'a'.repeat(61)}`, 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.')),
  },
);

/** Names every rule of a DNS subdomain refuses, and a few that merely look odd. */
const oddName = fc.oneof(
  fc.constantFrom(
    '',
    'Node-A',
    'NODE',
    'node_a',
    'node-a.',
    '.node-a',
    'node..a',
    '-node',
    'node-',
    'nöde',
    'ノード',
    'node:10250',
    'node a',
    'a'.repeat(64),
    'a'.repeat(254),
    'a'.repeat(300),
    `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`,
    '10.0.0.1',
    '::1',
    'true',
    'null',
    '~',
    '0x10',
    '1e3',
    '*',
  ),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.mixedCase(fc.constantFrom('node-a', 'edge.example.com')),
);

const address = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  validName,
  fc.constantFrom('fe80::1%eth0', '::ffff:192.0.2.1', '[::1]', '192.0.2.1:10250', '01.2.3.4', '256.1.1.1', 'NODE-A.internal', ''),
  oddName,
);

/** Values of any YAML type, for fields that expect something else. */
const anyValue = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);

const port = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 65535 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, -1, 65536, 1.5, 10250.0001, Number.MAX_SAFE_INTEGER, Infinity, NaN) },
  { weight: 1, arbitrary: anyValue },
);

const labels = fc.oneof(
  { weight: 4, arbitrary: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 4 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 10 }), anyValue, { maxKeys: 4 }) },
  { weight: 1, arbitrary: anyValue },
  // Keys that are special to JavaScript objects, as own properties (a literal `__proto__:` would not be).
  { weight: 1, arbitrary: fc.constant(JSON.parse('{"__proto__": "x", "constructor": "y", "toString": "z"}') as unknown) },
);

/** One entry of the nodes list: mostly node-shaped, fields optional, sometimes with extra keys. */
const entry = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record(
      {
        name: fc.oneof({ weight: 3, arbitrary: validName }, { weight: 2, arbitrary: oddName }, { weight: 1, arbitrary: anyValue }),
        addresses: fc.oneof(
          { weight: 5, arbitrary: fc.array(address, { maxLength: 4 }) },
          { weight: 1, arbitrary: fc.array(anyValue, { maxLength: 3 }) },
          { weight: 1, arbitrary: anyValue },
        ),
        kubeletPort: port,
        role: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('edge', 'cloud') }, { weight: 1, arbitrary: fc.constantFrom('Edge', 'worker', '') }, { weight: 1, arbitrary: anyValue }),
        labels,
        extra: anyValue,
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: anyValue },
);

/** A document as an editor might leave it: a nodes list, mostly, with duplicates mixed in. */
const document = fc
  .record({
    entries: fc.array(entry, { maxLength: 12 }),
    // Copies of earlier entries' names or addresses, so duplicates are common rather than rare.
    duplicates: fc.array(fc.record({ of: fc.nat(), field: fc.constantFrom('name', 'address', 'whole') }), { maxLength: 4 }),
    extraTopLevel: fc.option(fc.dictionary(fc.string({ maxLength: 8 }), anyValue, { maxKeys: 2 }), { freq: 5, nil: undefined }),
  })
  .map(({ entries, duplicates, extraTopLevel }) => {
    const list: unknown[] = [...entries];
    for (const { of, field } of duplicates) {
      const source = entries.length > 0 ? entries[of % entries.length] : undefined;
      if (typeof source !== 'object' || source === null || Array.isArray(source)) continue;
      const original = source as Record<string, unknown>;
      const addresses = Array.isArray(original.addresses) ? (original.addresses as unknown[]) : [];
      if (field === 'whole') list.push({ ...original });
      else if (field === 'name') list.push({ name: original.name, addresses: ['203.0.113.250'] });
      else list.push({ name: `dup-${list.length}`, addresses: addresses.slice(0, 1) });
    }
    const extra = Object.entries(extraTopLevel ?? {}).filter(([key]) => key !== 'nodes');
    return { nodes: list, ...Object.fromEntries(extra) };
  });

/** A valid node, by construction. */
const validNode: fc.Arbitrary<TunnelNode> = fc.record({
  name: validName,
  addresses: fc.array(fc.oneof(fc.ipV4(), fc.ipV6(), validName), { maxLength: 3 }),
  kubeletPort: fc.integer({ min: 1, max: 65535 }),
  role: fc.constantFrom('edge' as const, 'cloud' as const),
  labels: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 3, noNullPrototype: true }),
  podCIDRs: fc.constant([] as string[]),
}, { noNullPrototype: true });

/** A change that makes any node unservable, whatever else it holds (a bad field of its own only costs that field). */
const corruption = fc.constantFrom<(node: TunnelNode) => Record<string, unknown>>(
  (n) => ({ ...n, name: n.name.toUpperCase() === n.name ? `${n.name}_` : n.name.toUpperCase() }),
  (n) => ({ ...n, name: 'a'.repeat(300) }),
  (n) => ({ ...n, name: `${n.name}:10250` }),
  (n) => ({ ...n, kubeletPort: '10250' }),
  (n) => ({ ...n, role: 'worker' }),
  (n) => ({ ...n, labels: { zone: 1 } }),
  (n) => ({ ...n, addresses: 'a single string' }),
  (n) => ({ ...n, unknownKey: true }),
);

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

describe('parseNodesFile under arbitrary input (property tests)', () => {
  it('never throws on arbitrary text', () => {
    const text = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: 'binary', maxLength: 200 }),
      // Text made of YAML's own punctuation is far likelier to reach the deeper paths.
      fc.string({ unit: fc.constantFrom(...'nodes: name-[]{},&*!|>\'"#%@`?\n\t -0123.:'.split('')), maxLength: 120 }),
      fc.constantFrom('', '\n', 'nodes:', 'nodes: []', 'nodes: {}', 'nodes: [1, 2]', '- a', 'nodes: &a [*a]', 'nodes:\n  - &x {name: a}\n  - *x', '\uFEFFnodes: []', '---\nnodes: []\n---\nnodes: []'),
    );
    fc.assert(
      fc.property(text, (input) => assertWellFormed(parse(input))),
      options(3000),
    );
  });

  it('never throws on arbitrary YAML documents of nodes, and returns only servable nodes', () => {
    fc.assert(
      fc.property(document, (doc) => {
        const parsed = parse(stringify(doc));
        assertWellFormed(parsed);
        // Only a document with a top-level key besides "nodes" is broken as a whole.
        assert.equal(parsed.fatal !== undefined, Object.keys(doc).length > 1, parsed.fatal);
      }),
      options(400),
    );
  });

  it('never throws when a good file is damaged anywhere', () => {
    const damaged = fc.record({
      nodes: fc.array(validNode, { minLength: 1, maxLength: 5 }),
      at: fc.nat(),
      insert: fc.string({ unit: fc.constantFrom(...':-[]{}&*!|>\'"#\n '.split('')), minLength: 1, maxLength: 4 }),
      cut: fc.nat({ max: 10 }),
    });
    fc.assert(
      fc.property(damaged, ({ nodes, at, insert, cut }) => {
        const text = stringify({ nodes });
        const position = at % (text.length + 1);
        assertWellFormed(parse(text.slice(0, position) + insert + text.slice(position + cut)));
      }),
      options(1000),
    );
  });

  it('keeps every valid node, in order, whatever invalid or duplicate entries surround it', () => {
    const mix = fc.record({
      valid: fc.uniqueArray(validNode, { selector: (n) => n.name, maxLength: 8 }),
      invalid: fc.array(fc.tuple(validNode, corruption), { maxLength: 5 }),
      duplicates: fc.array(fc.nat(), { maxLength: 3 }),
      order: fc.array(fc.nat(), { maxLength: 20 }),
    });
    fc.assert(
      fc.property(mix, ({ valid, invalid, duplicates, order }) => {
        // Who may hold which address is the translator's decision: the file keeps addresses as written.
        const good = valid;
        const bad = invalid.map(([n, corrupt]) => corrupt(n));
        // A duplicate of a valid node comes after it: same name, so the later copy is skipped.
        const dups = good.length === 0 ? [] : duplicates.map((i) => ({ ...good[i % good.length], addresses: [] }));
        // Interleave the invalid entries among the valid ones; duplicates go last.
        const list: unknown[] = [...good];
        bad.forEach((b, i) => list.splice((order[i] ?? 0) % (list.length + 1), 0, b));
        list.push(...dups);

        const parsed = parse(stringify({ nodes: list }));
        assertWellFormed(parsed);
        assert.equal(parsed.fatal, undefined);
        assert.deepEqual(parsed.nodes, good);
        // Every skipped entry is explained: at least one error each.
        const skipped = new Set(parsed.errors.map((e) => /^nodes\[(\d+)\]/.exec(e.path)?.[1]));
        assert.equal(skipped.size, bad.length + dups.length);
      }),
      options(600),
    );
  });
  // Names and addresses both become CONNECT authorities in one RouteConfiguration, and Envoy rejects the
  // whole of it for one repeated domain ("Only unique values for domains are permitted"), which would
  // stop every later route change from applying. Regression guard for a node listing its own name as an
  // address (a Kubernetes Hostname address), the same address twice or in two cases, and an address
  // that is another node's name (fixed in 1ca4856).
  it(
    'never accepts nodes whose CONNECT routes Envoy would reject for a duplicate domain',
    () => {
      const names = ['node-a', 'node-b', 'node-c'];
      const hosts = fc.constantFrom(...names, ...names.map((n) => n.toUpperCase()), 'node-a.internal', 'NODE-A.internal', '10.0.0.1', '10.0.0.2');
      const nodes = fc.array(
        fc.record({ name: fc.constantFrom(...names), addresses: fc.array(hosts, { maxLength: 3 }) }),
        { minLength: 1, maxLength: 4 },
      );
      fc.assert(
        fc.property(nodes, (list) => {
          const parsed = parse(stringify({ nodes: list }));
          assertWellFormed(parsed);
          const translation = translate(parsed.nodes, DEFAULT_SETTINGS);
          assert.ok(translation.ok);
          const any = translation.cloud.get(XdsType.route)?.get(CLOUD.connectRoutes);
          assert.ok(any);
          const domains = RouteConfiguration.decode(any.value).virtualHosts.flatMap((vh) => vh.domains.map((d) => d.toLowerCase()));
          const repeated = domains.filter((d, i) => domains.indexOf(d) !== i);
          assert.deepEqual(repeated, [], `Envoy would NACK connect_routes for nodes ${JSON.stringify(parsed.nodes.map((n) => [n.name, n.addresses]))}`);
        }),
        options(300),
      );
    },
  );
});
