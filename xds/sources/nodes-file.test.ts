import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { pino } from 'pino';
import type { TunnelNode } from '../model/node.js';
import { NodesFileSource, parseNodesFile } from './nodes-file.js';
import type { SourceLogger } from './source.js';
import type { TimerFunctions } from './watch-file.js';
import { CapturingLogger } from './testing.js';

// Compile-time check that a pino logger can be handed to a source as is.
const pinoFits: SourceLogger = pino({ level: 'silent' });
void pinoFits;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------


/** Timers that only fire when told to, so a test decides when the debounce ends. */
class FakeTimers implements TimerFunctions {
  readonly pending = new Map<number, () => void>();
  scheduled = 0;
  private nextId = 1;
  setTimeout(callback: () => void): number {
    const id = this.nextId++;
    this.scheduled++;
    this.pending.set(id, callback);
    return id;
  }
  clearTimeout(handle: unknown): void {
    if (typeof handle === 'number') this.pending.delete(handle);
  }
  fireAll(): void {
    const callbacks = [...this.pending.values()];
    this.pending.clear();
    callbacks.forEach((callback) => callback());
  }
}

/** Polls until `probe` returns something other than undefined/false; fails after `timeoutMs`. */
async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nodes-file-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A nodes file listing the given node names, each with a distinct address. */
function nodesYaml(...names: string[]): string {
  if (names.length === 0) return 'nodes: []\n';
  return `nodes:\n${names.map((name, i) => `  - name: ${name}\n    addresses: [10.0.0.${i + 1}]\n`).join('')}`;
}

interface Running {
  readonly source: NodesFileSource;
  readonly logger: CapturingLogger;
  readonly deliveries: string[][];
}

/** Starts a source on `path`; it is stopped when the test ends, pass or fail. */
async function startSource(
  t: TestContext,
  path: string,
  timers?: TimerFunctions,
): Promise<Running> {
  const logger = new CapturingLogger();
  const deliveries: string[][] = [];
  const source = new NodesFileSource({ path, logger, debounceMs: 10, timers });
  t.after(() => source.stop());
  await source.start((nodes) => deliveries.push(nodes.map((node) => node.name)));
  return { source, logger, deliveries };
}

// ---------------------------------------------------------------------------------------------
// The parser
// ---------------------------------------------------------------------------------------------

describe('parseNodesFile', () => {
  test('applies the defaults and reads every field', () => {
    const result = parseNodesFile(
      [
        'nodes:',
        '  - name: node-a',
        '  - name: node-b',
        '    addresses: [10.0.0.11, node-b.example.com]',
        '    kubeletPort: 10255',
        '    role: cloud',
        '    labels: {zone: a, "topology.kubernetes.io/region": eu}',
      ].join('\n'),
      'nodes.yaml',
    );
    const expected: TunnelNode[] = [
      { name: 'node-a', addresses: [], kubeletPort: 10250, role: 'edge', labels: {}, podCIDRs: [] },
      {
        name: 'node-b',
        addresses: ['10.0.0.11', 'node-b.example.com'],
        kubeletPort: 10255,
        role: 'cloud',
        labels: { zone: 'a', 'topology.kubernetes.io/region': 'eu' },
        podCIDRs: [],
      },
    ];
    assert.deepEqual(result, { nodes: expected, errors: [] });
  });

  test('accepts an empty list, and empty values as absent', () => {
    assert.deepEqual(parseNodesFile('nodes: []\n', 'nodes.yaml'), { nodes: [], errors: [] });
    const result = parseNodesFile('nodes:\n  - name: a\n    labels:\n    addresses:\n', 'nodes.yaml');
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.nodes[0]?.labels, {});
  });

  // Each bad entry sits on line 3, after a good entry on line 2 that must survive.
  const entryErrors: { what: string; entry: string; path: string; message: RegExp; kept?: true }[] = [
    { what: 'a missing name', entry: '{addresses: [10.0.0.9]}', path: '.name', message: /is required/ },
    { what: 'a name that is not a string', entry: '{name: 42}', path: '.name', message: /must be a string, not a number/ },
    { what: 'a bad name', entry: '{name: Node_B}', path: '.name', message: /DNS subdomain/ },
    { what: 'a duplicate name', entry: '{name: good}', path: '.name', message: /already defined by nodes\[0\] \(line 2\)/ },
    { what: 'an unknown key', entry: '{name: b, lables: {}}', path: '.lables', message: /unknown key/ },
    { what: 'an entry that is not a mapping', entry: 'just-a-name', path: '', message: /must be a mapping/ },
    { what: 'addresses not a list', entry: '{name: b, addresses: 10.0.0.9}', path: '.addresses', message: /must be a list/ },
    { what: 'an address not a string', entry: '{name: b, addresses: [7]}', path: '.addresses[0]', message: /must be a string/ },
    { what: 'a bad address', entry: '{name: b, addresses: ["not an address"]}', path: '.addresses[0]', message: /not an IP address or host name: dropped/, kept: true },
    { what: 'a port that is not a number', entry: '{name: b, kubeletPort: "10250"}', path: '.kubeletPort', message: /must be a number/ },
    { what: 'a port out of range', entry: '{name: b, kubeletPort: 70000}', path: '.kubeletPort', message: /not a TCP port \(1-65535\): using 10250/, kept: true },
    { what: 'an unknown role', entry: '{name: b, role: master}', path: '.role', message: /must be "edge" or "cloud", not "master"/ },
    { what: 'labels not a mapping', entry: '{name: b, labels: [a]}', path: '.labels', message: /must be a mapping/ },
    { what: 'a label that is not a string', entry: '{name: b, labels: {rack: 12}}', path: '.labels["rack"]', message: /quote it/ },
  ];
  for (const { what, entry, path, message, kept } of entryErrors) {
    test(`${kept ? 'keeps the node but drops' : 'skips an entry with'} ${what}, naming its line`, () => {
      const text = `nodes:\n  - {name: good, addresses: [10.0.0.1]}\n  - ${entry}\n`;
      const result = parseNodesFile(text, 'nodes.yaml');
      assert.equal(result.fatal, undefined);
      assert.deepEqual(
        result.nodes.map((node) => node.name),
        kept ? ['good', 'b'] : ['good'],
      );
      assert.equal(result.errors.length, 1, JSON.stringify(result.errors));
      assert.equal(result.errors[0]?.path, `nodes[1] (line 3)${path}`);
      assert.match(result.errors[0]?.message ?? '', message);
    });
  }

  test('reports every problem of a bad entry, in file order, and keeps the good ones', () => {
    const text = [
      'nodes:',
      '  - name: a', // line 2
      '  - name: B', // line 3: bad name (a model error)
      '  - name: c', // line 4: two shape errors
      '    kubeletPort: x',
      '    role: master',
      '  - name: d', // line 7
    ].join('\n');
    const result = parseNodesFile(text, 'nodes.yaml');
    assert.deepEqual(
      result.nodes.map((node) => node.name),
      ['a', 'd'],
    );
    assert.deepEqual(
      result.errors.map((error) => error.path),
      ['nodes[1] (line 3).name', 'nodes[2] (line 4).kubeletPort', 'nodes[2] (line 4).role'],
    );
  });

  const fatals: { what: string; text: string; fatal: string | RegExp }[] = [
    {
      what: 'a YAML syntax error, with line and column',
      text: 'nodes:\n  - name: a\n   - name: b\n',
      fatal: 'nodes.yaml:3:4: All sequence items must start at the same column',
    },
    { what: 'a duplicate key', text: 'nodes:\n  - name: a\n    name: b\n', fatal: /^nodes\.yaml:3:5: Map keys must be unique/ },
    { what: 'an empty file', text: '', fatal: /^nodes\.yaml:1:1: the top level must be a mapping/ },
    { what: 'a top-level list', text: '- name: a\n', fatal: /^nodes\.yaml:1:1: the top level must be a mapping/ },
    { what: 'an unknown top-level key', text: 'nodes: []\nextra: 1\n', fatal: /^nodes\.yaml:2:1: unknown top-level key "extra"/ },
    { what: 'a missing nodes key', text: 'nodse: []\n', fatal: /^nodes\.yaml:1:1: unknown top-level key "nodse"/ },
    { what: 'nodes not a list', text: 'nodes: {a: 1}\n', fatal: /^nodes\.yaml:1:8: "nodes" must be a list/ },
    { what: 'a second document', text: 'nodes: []\n---\nnodes: []\n', fatal: /^nodes\.yaml:2:1: expected one YAML document/ },
  ];
  for (const { what, text, fatal } of fatals) {
    test(`treats ${what} as fatal`, () => {
      const result = parseNodesFile(text, 'nodes.yaml');
      if (typeof fatal === 'string') assert.equal(result.fatal, fatal);
      else assert.match(result.fatal ?? '(none)', fatal);
      assert.deepEqual(result.nodes, []);
      assert.deepEqual(result.errors, []);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// The watching source
// ---------------------------------------------------------------------------------------------

describe('NodesFileSource', () => {
  test('delivers the file, then each edit', async (t) => {
    const path = join(await tempDir(t), 'nodes.yaml');
    await writeFile(path, nodesYaml('a'));
    const { deliveries } = await startSource(t, path);
    assert.deepEqual(deliveries, [['a']]);

    await writeFile(path, nodesYaml('a', 'b'));
    await waitFor('the edit', () => deliveries.length === 2);
    assert.deepEqual(deliveries[1], ['a', 'b']);
  });

  test('does not deliver an unchanged node list again', async (t) => {
    const path = join(await tempDir(t), 'nodes.yaml');
    await writeFile(path, nodesYaml('a'));
    const { deliveries, logger } = await startSource(t, path);

    await writeFile(path, `# just a comment\n${nodesYaml('a')}`);
    await waitFor('the re-read', () => logger.text('info').some((line) => line.includes('did not')));
    assert.deepEqual(deliveries, [['a']]);
  });

  test('keeps the last good nodes through a broken edit, then applies the fix', async (t) => {
    const path = join(await tempDir(t), 'nodes.yaml');
    await writeFile(path, nodesYaml('a'));
    const { deliveries, logger } = await startSource(t, path);

    await writeFile(path, 'nodes:\n  - name: a\n   - name: b\n');
    // Find the syntax error itself: a read that races the write may first log the half-written file.
    const logged = await waitFor('the error log', () =>
      logger.text('error').find((line) => line.includes('nodes.yaml:3:4:')),
    );
    assert.match(logged, /All sequence items must start at the same column/);
    assert.match(logged, /keeping the last good nodes/);
    assert.deepEqual(deliveries, [['a']]);

    await writeFile(path, nodesYaml('a', 'c'));
    await waitFor('the fix', () => deliveries.length === 2);
    assert.deepEqual(deliveries[1], ['a', 'c']);
  });

  test('logs bad entries and delivers the rest', async (t) => {
    const path = join(await tempDir(t), 'nodes.yaml');
    await writeFile(path, nodesYaml('a'));
    const { deliveries, logger } = await startSource(t, path);

    await writeFile(path, 'nodes:\n  - name: a\n  - name: Bad\n  - name: c\n');
    await waitFor('the edit', () => deliveries.length === 2);
    assert.deepEqual(deliveries[1], ['a', 'c']);
    assert.equal(logger.text('warn').length, 1);
    assert.match(logger.text('warn')[0] ?? '', /nodes\[1\] \(line 3\)\.name/);
  });

  test('follows a file replaced by rename', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'nodes.yaml');
    await writeFile(path, nodesYaml('a'));
    const { deliveries } = await startSource(t, path);

    for (const [i, names] of [['b'], ['b', 'c']].entries()) {
      const scratch = join(dir, `.nodes.yaml.${i}.tmp`);
      await writeFile(scratch, nodesYaml(...names));
      await rename(scratch, path);
      await waitFor(`rename ${i + 1}`, () => deliveries.length === i + 2);
      assert.deepEqual(deliveries[i + 1], names);
    }
  });

  test('follows a Kubernetes ConfigMap volume, which swaps a ..data symlink', async (t) => {
    const dir = await tempDir(t);
    const publish = async (version: number, names: string[]): Promise<void> => {
      // What kubelet's atomic writer does: a new timestamped directory, then rename a fresh symlink over ..data.
      await mkdir(join(dir, `..v${version}`));
      await writeFile(join(dir, `..v${version}`, 'nodes.yaml'), nodesYaml(...names));
      await symlink(`..v${version}`, join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    };
    await publish(1, ['a']);
    await symlink(join('..data', 'nodes.yaml'), join(dir, 'nodes.yaml'));
    const { deliveries } = await startSource(t, join(dir, 'nodes.yaml'));

    await publish(2, ['a', 'b']);
    await waitFor('the new ConfigMap version', () => deliveries.length === 2);
    assert.deepEqual(deliveries[1], ['a', 'b']);
  });

  test('keeps the last good nodes when the file is deleted, and picks it up again', async (t) => {
    const path = join(await tempDir(t), 'nodes.yaml');
    await writeFile(path, nodesYaml('a'));
    const { deliveries, logger } = await startSource(t, path);

    await unlink(path);
    const logged = await waitFor('the warning', () => logger.text('warn')[0]);
    assert.match(logged, /does not exist/);
    assert.deepEqual(deliveries, [['a']]);

    await writeFile(path, nodesYaml('b'));
    await waitFor('the new file', () => deliveries.length === 2);
    assert.deepEqual(deliveries[1], ['b']);
  });

  test('a removed directory is reported and watched again once it is back, with the edits made meanwhile', async (t) => {
    const dir = join(await tempDir(t), 'config');
    await mkdir(dir);
    const path = join(dir, 'nodes.yaml');
    await writeFile(path, nodesYaml('a'));
    const { source, deliveries } = await startSource(t, path);

    await rm(dir, { recursive: true });
    const problem = await waitFor('the problem reported', () => source.problem());
    assert.match(problem, /watching the nodes file failed \(retrying\): the directory .* was removed/);
    await mkdir(dir);
    await writeFile(path, nodesYaml('b'));
    // The first retry comes 1 s after the failure; the file is read at once then.
    await waitFor('the new nodes', () => deliveries.length === 2, 5000);
    assert.deepEqual(deliveries[1], ['b']);
    assert.equal(source.problem(), undefined);
    await writeFile(path, nodesYaml('c'));
    await waitFor('edits apply again', () => deliveries.length === 3, 5000);
  });

  test('rejects start when the file is missing, naming the path', async (t) => {
    const dir = await tempDir(t);
    for (const path of [join(dir, 'nodes.yaml'), join(dir, 'no-such-dir', 'nodes.yaml')]) {
      const source = new NodesFileSource({ path, logger: new CapturingLogger() });
      t.after(() => source.stop());
      await assert.rejects(
        source.start(() => assert.fail('nothing to deliver')),
        (error: Error) => error.message.includes(path),
      );
    }
  });

  test('rejects start when the file is broken, naming the line', async (t) => {
    const path = join(await tempDir(t), 'nodes.yaml');
    await writeFile(path, 'nodes:\n  - name: a\nextra: 1\n');
    const source = new NodesFileSource({ path, logger: new CapturingLogger() });
    t.after(() => source.stop());
    await assert.rejects(source.start(() => assert.fail('nothing to deliver')), {
      message: `nodes file is broken: ${path}:3:1: unknown top-level key "extra"; the only one is "nodes"`,
    });
  });

  test('reads only once the debounce timer fires, and keeps one timer per burst', async (t) => {
    const path = join(await tempDir(t), 'nodes.yaml');
    await writeFile(path, nodesYaml('a'));
    const timers = new FakeTimers();
    const { deliveries } = await startSource(t, path, timers);

    await writeFile(path, nodesYaml('a', 'b'));
    await writeFile(path, nodesYaml('a', 'b', 'c'));
    await waitFor('the debounce timer', () => timers.pending.size > 0);
    assert.equal(timers.pending.size, 1);
    assert.deepEqual(deliveries, [['a']]);

    timers.fireAll();
    await waitFor('the delivery', () => deliveries.length === 2);
    assert.deepEqual(deliveries[1], ['a', 'b', 'c']);
  });

  test('stop() clears the pending timer and ends watching', async (t) => {
    const path = join(await tempDir(t), 'nodes.yaml');
    await writeFile(path, nodesYaml('a'));
    const stoppedTimers = new FakeTimers();
    const stopped = await startSource(t, path, stoppedTimers);

    await writeFile(path, nodesYaml('b'));
    await waitFor('the debounce timer', () => stoppedTimers.pending.size > 0);
    await stopped.source.stop();
    assert.equal(stoppedTimers.pending.size, 0);

    // A second source on the same file is the control: once its watcher has seen the next edit,
    // the stopped one would have seen it too, had it still been watching.
    const controlTimers = new FakeTimers();
    await startSource(t, path, controlTimers);
    const scheduledBefore = stoppedTimers.scheduled;
    await writeFile(path, nodesYaml('c'));
    await waitFor('the control source to see the edit', () => controlTimers.pending.size > 0);
    assert.equal(stoppedTimers.scheduled, scheduledBefore);
    assert.deepEqual(stopped.deliveries, [['a']]);
  });

  test('start may only be called once', async (t) => {
    const path = join(await tempDir(t), 'nodes.yaml');
    await writeFile(path, nodesYaml());
    const { source } = await startSource(t, path);
    await assert.rejects(source.start(() => undefined), /only be called once/);
  });
});
