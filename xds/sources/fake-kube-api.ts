// Test support: a tiny stand-in for kube-apiserver's Node endpoints on 127.0.0.1, enough to drive
// KubernetesNodeSource through the real client library. It serves `GET /api/v1/nodes` (paged with
// limit/continue) and `GET /api/v1/nodes?watch=true` (chunked JSON lines), keeps an event history so a
// watch resumes from any resourceVersion it has not compacted, and answers older ones with 410 Gone
// the way the API server does (an ERROR event carrying a Status).

import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

/** A Node as JSON; tests build them with whatever fields they need. */
export interface FakeNode {
  metadata: { name: string; resourceVersion?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

export interface RecordedRequest {
  readonly watch: boolean;
  readonly query: URLSearchParams;
}

interface HistoryEntry {
  readonly rv: number;
  readonly line: string;
}

export class FakeKubeApi {
  readonly requests: RecordedRequest[] = [];
  /** While set, list requests wait for it (so a test can hold the initial list back). */
  listGate: Promise<void> | undefined;
  /** While set, watch requests get this HTTP status instead of a stream. */
  watchStatus: number | undefined;
  /** Answer the next paged request that carries a continue token with 410 (its snapshot expired). */
  expireNextContinue = false;

  private readonly nodes = new Map<string, FakeNode>();
  private readonly history: HistoryEntry[] = [];
  private readonly watchers = new Set<ServerResponse>();
  private rv = 100;
  /** Watches from resourceVersions below this get 410. */
  private oldestWatchable = 0;
  private server: Server;
  private port = 0;

  private constructor() {
    this.server = this.makeServer();
  }

  static async start(): Promise<FakeKubeApi> {
    const api = new FakeKubeApi();
    api.server.listen(0, '127.0.0.1');
    await once(api.server, 'listening');
    api.port = (api.server.address() as AddressInfo).port;
    return api;
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return kc;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  watchRequests(): URLSearchParams[] {
    return this.requests.filter((r) => r.watch).map((r) => r.query);
  }

  listRequests(): URLSearchParams[] {
    return this.requests.filter((r) => !r.watch).map((r) => r.query);
  }

  /** Creates or replaces a node and streams ADDED or MODIFIED. */
  put(node: FakeNode): void {
    const type = this.nodes.has(node.metadata.name) ? 'MODIFIED' : 'ADDED';
    const stored = this.stamp(node);
    this.nodes.set(node.metadata.name, stored);
    this.publish(type, stored);
  }

  /** Deletes a node and streams DELETED, unless `silently` (as if the event were compacted away). */
  remove(name: string, { silently = false } = {}): void {
    const node = this.nodes.get(name);
    if (node === undefined) throw new Error(`no node ${name}`);
    this.nodes.delete(name);
    const stamped = this.stamp(node);
    if (silently) this.oldestWatchable = this.rv;
    else this.publish('DELETED', stamped);
  }

  /** Streams a BOOKMARK at a new resourceVersion (other objects changed meanwhile). */
  bookmark(): void {
    this.rv++;
    this.broadcast(JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } } }));
  }

  /** Forgets the history: a watch from any resourceVersion seen so far now gets 410. */
  compact(): void {
    this.rv++; // as etcd does, compaction lands at a revision newer than everything compacted
    this.oldestWatchable = this.rv;
  }

  /** Sends an ERROR event with `code` on every open watch and ends it, as the API server does. */
  failWatches(code: number): void {
    const line = errorEventLine(code);
    for (const res of this.watchers) res.end(`${line}\n`);
    this.watchers.clear();
  }

  /** Ends every open watch cleanly (the API server's timeoutSeconds). */
  endWatches(): void {
    for (const res of this.watchers) res.end();
    this.watchers.clear();
  }

  /** Stops answering at all: connections are cut and new ones refused. */
  async goDown(): Promise<void> {
    this.watchers.clear();
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }

  /** Answers again on the same port. */
  async comeBack(): Promise<void> {
    this.server = this.makeServer();
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    await this.goDown();
  }

  private makeServer(): Server {
    return createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        res.destroy(error instanceof Error ? error : new Error(String(error)));
      });
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    if (req.method !== 'GET' || url.pathname !== '/api/v1/nodes') {
      res.writeHead(404).end();
      return;
    }
    const watch = url.searchParams.get('watch') === 'true';
    this.requests.push({ watch, query: url.searchParams });
    if (watch) this.serveWatch(url.searchParams, res);
    else await this.serveList(url.searchParams, res);
  }

  private async serveList(query: URLSearchParams, res: ServerResponse): Promise<void> {
    await this.listGate;
    const continueToken = query.get('continue');
    if (continueToken !== null && this.expireNextContinue) {
      this.expireNextContinue = false;
      res.writeHead(410, { 'content-type': 'application/json' }).end(statusJson(410, 'Expired', 'the continue token is too old'));
      return;
    }
    // A continue token here is "resourceVersion:offset"; pages are cut from the current state, which
    // is consistent enough since tests do not change nodes while a paged list is under way.
    const [listRv = this.resourceVersion, offsetText = '0'] = continueToken?.split(':') ?? [];
    const items = [...this.nodes.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const limit = Number(query.get('limit') ?? '0') || items.length;
    const offset = Number(offsetText);
    const page = items.slice(offset, offset + limit);
    const more = offset + limit < items.length;
    const body = {
      kind: 'NodeList',
      apiVersion: 'v1',
      metadata: { resourceVersion: listRv, ...(more ? { continue: `${listRv}:${offset + limit}` } : {}) },
      items: page,
    };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  private serveWatch(query: URLSearchParams, res: ServerResponse): void {
    if (this.watchStatus !== undefined) {
      res.writeHead(this.watchStatus, { 'content-type': 'application/json' }).end(statusJson(this.watchStatus, 'Failure', 'refused by the test'));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    const from = Number(query.get('resourceVersion') ?? '0');
    if (from < this.oldestWatchable) {
      res.end(`${errorEventLine(410)}\n`);
      return;
    }
    res.flushHeaders();
    for (const entry of this.history) if (entry.rv > from) res.write(`${entry.line}\n`);
    this.watchers.add(res);
    res.on('close', () => this.watchers.delete(res));
  }

  private stamp(node: FakeNode): FakeNode {
    this.rv++;
    return structuredClone({ ...node, metadata: { ...node.metadata, resourceVersion: String(this.rv) } });
  }

  private publish(type: string, object: FakeNode): void {
    const line = JSON.stringify({ type, object });
    this.history.push({ rv: this.rv, line });
    this.broadcast(line);
  }

  private broadcast(line: string): void {
    for (const res of this.watchers) res.write(`${line}\n`);
  }
}

function statusJson(code: number, reason: string, message: string): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}

function errorEventLine(code: number): string {
  const reason = code === 410 ? 'Expired' : 'InternalError';
  return `{"type":"ERROR","object":${statusJson(code, reason, code === 410 ? 'too old resource version' : 'watch failed')}}`;
}
