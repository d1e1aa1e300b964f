// The admin endpoint: /healthz, /metrics (Prometheus), /dump, /status, /route for the audit commands.
// Plain HTTP on loopback only, because a dump shows every route into the edge; reachable from
// elsewhere (xds status across replicas, Prometheus) only through the secure listener: HTTPS, and a
// client certificate or a Kubernetes bearer token for everything but /healthz (admin-auth.ts).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { createServer as createTlsServer } from 'node:https';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { toYaml } from '../../envoy/render.js';
import type { Ledger } from '../cache/ledger.js';
import { CLOUD_KEY, SIDECAR_KEY, edgeKey, type ResourceWatcher } from '../cache/snapshot-cache.js';
import type { RouteExplanation } from '../translate/explain.js';
import type { Json } from '../../envoy/render.js';
import { AuthUnavailableError, authorize, type AdminAuthMode, type TokenAuthorizer } from './admin-auth.js';
import { dumpProxy, resourcesOnly } from './dump.js';
import { replicaStatus } from './status.js';
import type { SignerStatus } from '../certificates/signer.js';

export interface AdminDeps {
  readonly cache: ResourceWatcher & { keys(): string[] };
  readonly ledger: Ledger;
  readonly registry: Registry;
  /** Undefined when ready to serve; else why not (no node list published yet, a source failing). */
  readonly notReady: () => string | undefined;
  /** Node input left out of the last translation, as "path: reason" lines. */
  readonly refusedInput: () => readonly string[];
  /** Where a CONNECT to HOST:PORT goes with the published configuration (`xds route`). */
  readonly explain: (target: string) => RouteExplanation;
  /** This replica's name in `xds status` (the pod name in a cluster). */
  readonly replicaId: string;
  /** The edge certificate signer's view, when this replica runs one. */
  readonly signerStatus?: () => SignerStatus | undefined;
}

/** Every path the admin endpoint answers. */
export const ADMIN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/metrics', '/proxies', '/dump', '/route', '/status']);

type Reply = (status: number, body: string, type?: string) => void;

function replier(res: ServerResponse): Reply {
  return (status, body, type = 'text/plain; charset=utf-8') => {
    res.writeHead(status, { 'content-type': type, ...(status === 401 && { 'www-authenticate': 'Bearer realm="edge-tunnel xds admin"' }) }).end(body);
  };
}

/** The admin endpoint's requests, answered without any check of who asks (the listeners do that). */
function adminHandler(deps: AdminDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const reply = replier(res);
    if (req.method !== 'GET') return reply(405, 'only GET\n');
    switch (url.pathname) {
      case '/healthz': {
        const problem = deps.notReady();
        return problem === undefined ? reply(200, 'ok\n') : reply(503, `not ready: ${problem}\n`);
      }
      case '/metrics':
        void deps.registry.metrics().then((text) => reply(200, text, deps.registry.contentType));
        return;
      case '/proxies':
        return reply(200, toYaml({ keys: deps.cache.keys(), streams: deps.ledger.all().map((e) => ({ key: e.key, proxy: e.proxyId, stream: e.streamId })) }), 'application/yaml');
      case '/dump': {
        const role = url.searchParams.get('role');
        const node = url.searchParams.get('node') ?? undefined;
        const filter = { type: url.searchParams.get('type') ?? undefined, name: url.searchParams.get('name') ?? undefined };
        const show = (dump: Json): void => reply(200, toYaml(url.searchParams.get('format') === 'resources' ? resourcesOnly(dump) : dump), 'application/yaml');
        // The refused input explains routes that are missing, for the cloud and for the node it concerns.
        const refused = (prefix?: string): string[] => deps.refusedInput().filter((line) => prefix === undefined || line.startsWith(prefix));
        // A node the server serves no configuration is an error, never an empty dump that looks like one.
        if (node !== undefined && !deps.cache.keys().includes(edgeKey(node))) {
          return reply(404, `no edge node "${node}" is served (xds route, and refusedInput in the cloud dump, say why a node is missing)\n`);
        }
        if (role === 'cloud') return show(dumpProxy(CLOUD_KEY, deps.cache, deps.ledger, refused(node && `${node}.`), { ...filter, node }));
        if (role === 'edge' && node) return show(dumpProxy(edgeKey(node), deps.cache, deps.ledger, refused(`${node}.`), filter));
        if (role === 'sidecar') return show(dumpProxy(SIDECAR_KEY, deps.cache, deps.ledger, [], filter));
        return reply(400, 'usage: /dump?role=cloud[&node=<edge node>] or /dump?role=edge&node=<node name>, optional &type=<Cluster|Listener|RouteConfiguration|VirtualHost|Secret>&name=<resource>&format=resources\n');
      }
      case '/status':
        return reply(200, JSON.stringify(replicaStatus(deps.replicaId, deps.ledger, deps.cache.keys(), deps.signerStatus?.())), 'application/json');
      case '/route': {
        const target = url.searchParams.get('target');
        if (!target) return reply(400, 'usage: /route?target=HOST:PORT\n');
        return reply(200, toYaml({ target, ...deps.explain(target) }), 'application/yaml');
      }
      default:
        return reply(404, `endpoints: ${[...ADMIN_PATHS].join(' ')}\n`);
    }
  };
}

/** The loopback admin endpoint: plain HTTP, for probes and `kubectl exec` inside the pod. */
export function adminServer(deps: AdminDeps): Server {
  return createServer(adminHandler(deps));
}

interface SecureAdminOptions {
  /** tls.crt and tls.key: the listener's certificate; ca.crt: the CA of client certificates (mode certificate). */
  readonly tlsDir: string;
  readonly modes: readonly AdminAuthMode[];
  /** Checks bearer tokens (mode token). */
  readonly tokens?: TokenAuthorizer;
  readonly onDecision?: (decision: { path: string; allowed: boolean; user?: string; reason?: string }) => void;
}

/**
 * The secure admin endpoint: HTTPS, certificate files re-read when they change (checked every 5 s), and
 * every request but /healthz authenticated and authorized (admin-auth.ts). A client certificate is
 * asked for (mode certificate) but not required by the handshake, so that /healthz answers HTTPS
 * probes without credentials; every other path checks it, or the token, per request.
 */
export function secureAdminServer(deps: AdminDeps, options: SecureAdminOptions): Server {
  const handle = adminHandler(deps);
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = new URL(req.url ?? '/', 'https://admin').pathname;
    authorize(req, path, options.modes, options.tokens).then(
      (decision) => {
        options.onDecision?.({ path, ...decision });
        if (decision.allowed) handle(req, res);
        else replier(res)(decision.status, `${decision.status === 401 ? 'unauthorized' : 'forbidden'}: ${decision.reason}\n`);
      },
      (error: unknown) => replier(res)(error instanceof AuthUnavailableError ? 503 : 500, `${error instanceof Error ? error.message : String(error)}\n`),
    );
  };
  const { tlsDir } = options;
  // The client CA only matters when certificates are a way in; a token-only listener needs no ca.crt.
  const read = (): { cert: Buffer; key: Buffer; ca?: Buffer } => ({
    cert: readFileSync(join(tlsDir, 'tls.crt')),
    key: readFileSync(join(tlsDir, 'tls.key')),
    ...(!options.modes.includes('certificate') ? {} : { ca: readFileSync(join(tlsDir, 'ca.crt')) }),
  });
  const same = (a: Buffer | undefined, b: Buffer | undefined): boolean => (a === undefined ? b === undefined : b !== undefined && a.equals(b));
  let current = read();
  const server = createTlsServer({ ...current, requestCert: options.modes.includes('certificate'), rejectUnauthorized: false }, handler);
  const reload = setInterval(() => {
    try {
      const next = read();
      if (same(next.cert, current.cert) && same(next.key, current.key) && same(next.ca, current.ca)) return;
      server.setSecureContext(next);
      current = next;
    } catch {
      // Half-written or missing files: keep the last good ones, try again on the next tick.
    }
  }, ADMIN_TLS_REFRESH_MS);
  reload.unref();
  server.on('close', () => clearInterval(reload));
  return server;
}

const ADMIN_TLS_REFRESH_MS = 5000;
