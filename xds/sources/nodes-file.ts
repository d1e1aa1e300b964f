import { readFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import {
  DEFAULT_KUBELET_PORT,
  formatInputError,
  cleanNode,
  type InputError,
  type NodeRole,
  type TunnelNode,
} from '../model/node.js';
import { backoffMs } from './backoff.js';
import type { NodeSource, SourceLogger } from './source.js';
import { globalTimers, watchFile, type FileWatch, type TimerFunctions } from './watch-file.js';

// ---------------------------------------------------------------------------------------------
// The file format
// ---------------------------------------------------------------------------------------------

export interface ParsedNodesFile {
  /** The entries that can be served. */
  nodes: TunnelNode[];
  /** Why each skipped entry was skipped, with paths such as `nodes[2] (line 9).name`. */
  errors: InputError[];
  /** Set when the file as a whole is unusable (`file:line:col: reason`); `nodes` is then empty. */
  fatal?: string;
}

const ENTRY_KEYS: readonly string[] = ['name', 'addresses', 'kubeletPort', 'role', 'labels', 'podCIDRs'];

/**
 * Parses a nodes file. Whole-file problems (YAML syntax, wrong shape, unknown top-level keys) are
 * fatal, because serving a guess from a half-written file could drop every tunnel. A problem in one
 * entry only skips that entry, so one typo does not take the other nodes down.
 */
export function parseNodesFile(text: string, fileName: string): ParsedNodesFile {
  const lineCounter = new LineCounter();
  // prettyErrors off: the default appends "at line X, column Y" plus a source excerpt to the message;
  // we prefix the position ourselves in the usual `file:line:col:` form instead.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const lineOf = (offset: number): number => lineCounter.linePos(Math.max(0, offset)).line;
  const fatal = (offset: number | undefined, message: string): ParsedNodesFile => {
    const { line, col } = lineCounter.linePos(Math.max(0, offset ?? 0));
    return { nodes: [], errors: [], fatal: `${fileName}:${line}:${col}: ${message}` };
  };

  const [syntaxError] = doc.errors;
  if (syntaxError !== undefined) {
    // The library's wording for this one speaks to programmers ("use parseAllDocuments()").
    const message =
      syntaxError.code === 'MULTIPLE_DOCS' ? 'expected one YAML document, found a second' : syntaxError.message;
    return fatal(syntaxError.pos[0], message);
  }

  const top = doc.contents;
  // An empty file lands here too: an editor that truncates before writing must not wipe all nodes.
  if (!isMap(top)) return fatal(top?.range[0], 'the top level must be a mapping with a "nodes" list');
  const nodesPair = top.items.find((pair) => isScalar(pair.key) && pair.key.value === 'nodes');
  for (const pair of top.items) {
    if (pair === nodesPair) continue;
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    return fatal(pair.key?.range[0], `unknown top-level key "${key}"; the only one is "nodes"`);
  }
  if (nodesPair === undefined) return fatal(top.range[0], 'missing the "nodes" list (use "nodes: []" for none)');
  const list = nodesPair.value;
  if (!isSeq(list)) {
    return fatal(list?.range[0] ?? nodesPair.key?.range[0], '"nodes" must be a list (use "nodes: []" for none)');
  }

  let values: unknown[];
  try {
    // toJS resolves aliases and refuses alias bombs (maxAliasCount); the AST is kept for line numbers.
    values = list.toJS(doc, { maxAliasCount: 100 }) as unknown[];
  } catch (error) {
    return fatal(list.range[0], error instanceof Error ? error.message : String(error));
  }

  return entriesToNodes(values, (i) => lineOf(list.items[i]?.range[0] ?? list.range[0]));
}

/** The entries of the list, checked and cleaned: `lineOf(i)` is the line entry i starts on. */
function entriesToNodes(values: readonly unknown[], lineOf: (index: number) => number): ParsedNodesFile {
  const candidates: TunnelNode[] = [];
  const candidatePaths: string[] = [];
  const errors: InputError[] = [];
  values.forEach((value, i) => {
    const path = `nodes[${i}] (line ${lineOf(i)})`;
    const entry = readEntry(value, path);
    if (Array.isArray(entry)) {
      errors.push(...entry);
    } else {
      candidates.push(entry);
      candidatePaths.push(path);
    }
  });
  // The model's own rules, with line numbers: bad fields dropped, a repeated name skipped. Which node
  // may hold which address is the translator's decision (translate/admission.ts), the same for every source.
  const nodes: TunnelNode[] = [];
  const seen = new Map<string, string>();
  candidates.forEach((candidate, k) => {
    const path = candidatePaths[k] ?? 'nodes[?]';
    const { node, errors: own } = cleanNode(candidate, path);
    errors.push(...own);
    if (node === undefined) return;
    const first = seen.get(node.name.toLowerCase());
    if (first !== undefined) return void errors.push({ path: `${path}.name`, message: `"${node.name}" is already defined by ${first}: skipped` });
    seen.set(node.name.toLowerCase(), path);
    nodes.push(node);
  });
  return { nodes, errors: inFileOrder(errors) };
}

/** A list item that the fast path could not parse on its own: the whole file is parsed instead. */
const UNPARSED = Symbol('unparsed');

/**
 * The items of a nodes file in the usual block form, `nodes:` and then one `- ` item per node at one
 * indentation, each with the line it starts on; undefined for anything else (flow style, anchors or
 * aliases, several documents, tabs, other keys, an empty list), which is parsed whole instead.
 */
function splitItems(text: string): { text: string; line: number }[] | undefined {
  if (/[&*\t]/.test(text) || /^(---|\.\.\.)/m.test(text)) return undefined;
  const lines = text.split('\n');
  const blank = (line: string): boolean => /^\s*(#.*)?$/.test(line);
  let i = 0;
  while (i < lines.length && blank(lines[i])) i++;
  if (i >= lines.length || !/^nodes:\s*(#.*)?$/.test(lines[i])) return undefined;
  let indent: string | undefined;
  const items: { start: number; lines: string[] }[] = [];
  for (i++; i < lines.length; i++) {
    const line = lines[i];
    const current = items.at(-1);
    if (blank(line)) {
      current?.lines.push(line);
      continue;
    }
    const dash = /^( *)- \S/.exec(line);
    if (dash && (indent === undefined || dash[1] === indent)) {
      indent ??= dash[1];
      items.push({ start: i, lines: [line] });
      continue;
    }
    const lead = /^ */.exec(line)?.[0].length ?? 0;
    if (current === undefined || indent === undefined || lead <= indent.length) return undefined;
    current.lines.push(line);
  }
  return items.length === 0 ? undefined : items.map((item) => ({ text: item.lines.join('\n'), line: item.start + 1 }));
}

/** One list item parsed on its own, or UNPARSED when it is not exactly one well-formed item. */
function parseItem(text: string): unknown {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) return UNPARSED;
  const value: unknown = doc.toJS({ maxAliasCount: 100 });
  return Array.isArray(value) && value.length === 1 ? value[0] : UNPARSED;
}

/**
 * Parses nodes files, reusing what earlier parses read: a file in the usual block form is cut into its
 * items and only items whose text changed are parsed again, so editing one node of 10,000 costs one
 * node's parse, not the file's. Any other file, or an item that does not parse on its own, goes
 * through parseNodesFile whole: the result is always exactly parseNodesFile's (nodes-file.test.ts).
 */
export class NodesFileParser {
  private items = new Map<string, unknown>();

  parse(text: string, fileName: string): ParsedNodesFile {
    const split = splitItems(text);
    if (split) {
      const next = new Map<string, unknown>();
      const values = split.map(({ text: item }) => (this.items.has(item) ? this.items.get(item) : parseItem(item)));
      if (!values.includes(UNPARSED)) {
        split.forEach(({ text: item }, i) => next.set(item, values[i]));
        this.items = next;
        return entriesToNodes(values, (i) => split[i].line);
      }
    }
    this.items = new Map();
    return parseNodesFile(text, fileName);
  }
}

/** Shape errors and the model's errors come out in two batches; a reader wants them top to bottom. */
function inFileOrder(errors: InputError[]): InputError[] {
  const entryIndex = (error: InputError): number => Number(/^nodes\[(\d+)\]/.exec(error.path)?.[1] ?? 0);
  // Array.prototype.sort is stable, so errors within one entry keep their order.
  return errors.sort((a, b) => entryIndex(a) - entryIndex(b));
}

/** Checks one entry's shape and types and applies the defaults; the model's rules come later. */
function readEntry(value: unknown, path: string): TunnelNode | InputError[] {
  if (!isPlainObject(value)) {
    return [{ path, message: `must be a mapping with at least a "name", not ${describe(value)}` }];
  }
  const errors: InputError[] = [];
  const fail = (field: string, message: string): void => {
    errors.push({ path: `${path}.${field}`, message });
  };
  for (const key of Object.keys(value)) {
    if (!ENTRY_KEYS.includes(key)) fail(key, `unknown key; expected one of ${ENTRY_KEYS.join(', ')}`);
  }
  // An empty value (`labels:`) reads as null; treat it like an absent key rather than an error.
  const field = (key: string): unknown => value[key] ?? undefined;

  const name = field('name');
  if (name === undefined) fail('name', 'is required');
  else if (typeof name !== 'string') fail('name', `must be a string, not ${describe(name)}`);

  const addresses = field('addresses') ?? [];
  if (!Array.isArray(addresses)) {
    fail('addresses', `must be a list of IP addresses or host names, not ${describe(addresses)}`);
  } else {
    addresses.forEach((address: unknown, j) => {
      if (typeof address !== 'string') fail(`addresses[${j}]`, `must be a string, not ${describe(address)}`);
    });
  }

  const podCIDRs = field('podCIDRs') ?? [];
  if (!Array.isArray(podCIDRs)) {
    fail('podCIDRs', `must be a list of CIDRs, not ${describe(podCIDRs)}`);
  } else {
    podCIDRs.forEach((cidr: unknown, j) => {
      if (typeof cidr !== 'string') fail(`podCIDRs[${j}]`, `must be a string, not ${describe(cidr)}`);
    });
  }

  const kubeletPort = field('kubeletPort') ?? DEFAULT_KUBELET_PORT;
  if (typeof kubeletPort !== 'number') fail('kubeletPort', `must be a number, not ${describe(kubeletPort)}`);

  const role = field('role') ?? 'edge';
  if (!isRole(role)) {
    fail('role', `must be "edge" or "cloud", not ${typeof role === 'string' ? `"${role}"` : describe(role)}`);
  }

  const labels = field('labels') ?? {};
  if (!isPlainObject(labels)) {
    fail('labels', `must be a mapping of strings, not ${describe(labels)}`);
  } else {
    for (const [key, labelValue] of Object.entries(labels)) {
      if (typeof labelValue !== 'string') {
        // `zone: 1` or `canary: true` parse as a number or boolean; labels are strings in Kubernetes.
        fail(`labels["${key}"]`, `must be a string, not ${describe(labelValue)} (quote it)`);
      }
    }
  }

  // The narrowing below repeats the checks above so the compiler sees the types; errors decide.
  if (
    errors.length > 0 ||
    typeof name !== 'string' ||
    !Array.isArray(addresses) ||
    !Array.isArray(podCIDRs) ||
    typeof kubeletPort !== 'number' ||
    !isRole(role) ||
    !isPlainObject(labels)
  ) {
    return errors;
  }
  return {
    name,
    addresses: addresses.filter((address: unknown): address is string => typeof address === 'string'),
    kubeletPort,
    role,
    labels: Object.fromEntries(
      Object.entries(labels).filter((entry): entry is [string, string] => typeof entry[1] === 'string'),
    ),
    podCIDRs: podCIDRs.filter((cidr: unknown): cidr is string => typeof cidr === 'string'),
  };
}

function isRole(value: unknown): value is NodeRole {
  return value === 'edge' || value === 'cloud';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `a ${typeof value} (${typeof value === 'string' ? JSON.stringify(value) : String(value)})`;
}

// ---------------------------------------------------------------------------------------------
// The watching source
// ---------------------------------------------------------------------------------------------

export interface NodesFileSourceOptions {
  readonly path: string;
  readonly logger: SourceLogger;
  /** How long a burst of file events must be quiet before the file is read. */
  readonly debounceMs?: number;
  /** Defaults to the global setTimeout/clearTimeout; tests inject fakes. */
  readonly timers?: TimerFunctions;
}

/**
 * Serves the nodes file and applies edits live. A broken edit never replaces the last good list:
 * the error is logged and the previous nodes stay in force until the file is fixed.
 */
export class NodesFileSource implements NodeSource {
  private readonly path: string;
  private readonly logger: SourceLogger;
  private readonly debounceMs: number;
  private readonly timers: TimerFunctions;
  private onNodes: ((nodes: readonly TunnelNode[]) => void) | undefined;
  private watch: FileWatch | undefined;
  /** The last text read, so spurious events (touch, sibling files) neither re-parse nor re-log. */
  private lastText: string | undefined;
  private delivered: readonly TunnelNode[] | undefined;
  /** Loads run one after another so an older read can never overwrite a newer one. */
  private queue: Promise<void> = Promise.resolve();
  private started = false;
  /** Re-parses only the entries an edit changed. */
  private readonly parser = new NodesFileParser();
  private stopped = false;
  private watchError: string | undefined;
  private watchFailures = 0;
  private rewatchTimer: unknown;

  constructor(options: NodesFileSourceOptions) {
    this.path = options.path;
    this.logger = options.logger;
    this.debounceMs = options.debounceMs ?? 100;
    this.timers = options.timers ?? globalTimers;
  }

  async start(onNodes: (nodes: readonly TunnelNode[]) => void): Promise<void> {
    if (this.started) throw new Error('NodesFileSource.start may only be called once');
    this.started = true;
    this.onNodes = onNodes;
    // Watch before the first read, so an edit that lands during the read is not missed.
    try {
      this.watch = this.watchPath();
    } catch (error) {
      const reason = isNotFound(error) ? 'is in a directory that does not exist' : `cannot be watched: ${messageOf(error)}`;
      throw new Error(`nodes file ${this.path} ${reason}`, { cause: error });
    }
    try {
      await this.enqueue(() => this.load(true));
    } catch (error) {
      this.watch.close();
      throw error;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watch?.close();
    if (this.rewatchTimer !== undefined) this.timers.clearTimeout(this.rewatchTimer);
    await this.queue;
  }

  problem(): string | undefined {
    return this.watchError === undefined ? undefined : `watching the nodes file failed (retrying): ${this.watchError}`;
  }

  private watchPath(): FileWatch {
    return watchFile(this.path, {
      debounceMs: this.debounceMs,
      timers: this.timers,
      onChange: () => this.reload(),
      onError: (error) => this.watchFailed(error),
    });
  }

  /**
   * A failed watch (the directory replaced, inotify limits) is retried with backoff, 1 s to 30 s; once
   * it works again the file is read at once, so edits made meanwhile apply.
   */
  private watchFailed(error: Error): void {
    this.watch?.close();
    this.watch = undefined;
    this.watchError = error.message;
    this.watchFailures++;
    const retryInMs = backoffMs(this.watchFailures);
    this.logger.error({ path: this.path, error: error.message, retryInMs }, 'watching the nodes file failed; retrying');
    this.rewatchTimer = this.timers.setTimeout(() => {
      this.rewatchTimer = undefined;
      if (this.stopped) return;
      try {
        this.watch = this.watchPath();
      } catch (retryError) {
        this.watchFailed(retryError instanceof Error ? retryError : new Error(String(retryError)));
        return;
      }
      this.logger.info({ path: this.path }, 'watching the nodes file again');
      this.watchError = undefined;
      this.watchFailures = 0;
      this.reload();
    }, retryInMs);
  }

  private reload(): void {
    this.enqueue(() => this.load(false)).catch((error: unknown) => {
      this.logger.error({ path: this.path, error: messageOf(error) }, 'applying the nodes file failed');
    });
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.queue.then(task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The first load throws what the later ones log: there are no last good nodes to fall back on. */
  private async load(initial: boolean): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      const reason = isNotFound(error) ? 'does not exist' : `cannot be read: ${messageOf(error)}`;
      if (initial) throw new Error(`nodes file ${this.path} ${reason}`, { cause: error });
      this.lastText = undefined;
      this.logger.warn({ path: this.path, reason }, 'nodes file unreadable; keeping the last good nodes');
      return;
    }
    if (this.stopped || text === this.lastText) return;
    this.lastText = text;

    const parsed = this.parser.parse(text, this.path);
    if (parsed.fatal !== undefined) {
      if (initial) throw new Error(`nodes file is broken: ${parsed.fatal}`);
      this.logger.error({ path: this.path, error: parsed.fatal }, 'nodes file is broken; keeping the last good nodes');
      return;
    }
    for (const error of parsed.errors) {
      this.logger.warn({ path: this.path, error: formatInputError(error) }, 'skipping a nodes file entry');
    }
    if (this.delivered !== undefined && isDeepStrictEqual(parsed.nodes, this.delivered)) {
      // Logged so an operator can see the edit was noticed even though nothing is pushed.
      this.logger.info({ path: this.path }, 'nodes file changed; the node list did not');
      return;
    }
    this.delivered = parsed.nodes;
    this.logger.info(
      { path: this.path, nodes: parsed.nodes.length, errors: parsed.errors.length },
      'nodes file loaded',
    );
    this.onNodes?.(parsed.nodes);
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof Error && 'code' in error && error.code === 'ENOENT';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
