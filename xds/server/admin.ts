// The local admin endpoint: /healthz, /metrics (Prometheus) and /dump for `xds dump`. It listens on
// loopback by default because a dump shows every route into the edge.

import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { toYaml } from '../../envoy/render.js';
import type { Ledger } from '../cache/ledger.js';
import { CLOUD_KEY, edgeKey, type ResourceWatcher } from '../cache/snapshot-cache.js';
import { dumpProxy } from './dump.js';

export interface AdminDeps {
  readonly cache: ResourceWatcher & { keys(): string[] };
  readonly ledger: Ledger;
  readonly registry: Registry;
  /** Undefined when ready to serve; else why not (no node list published yet, a source failing). */
  readonly notReady: () => string | undefined;
  /** Node input left out of the last translation, as "path: reason" lines. */
  readonly refusedInput: () => readonly string[];
}

export function adminServer(deps: AdminDeps): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type }).end(body);
    };
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
        const node = url.searchParams.get('node');
        // The refused input explains routes that are missing, for the cloud and for the node it concerns.
        const refused = (prefix?: string): string[] => deps.refusedInput().filter((line) => prefix === undefined || line.startsWith(prefix));
        if (role === 'cloud') return reply(200, toYaml(dumpProxy(CLOUD_KEY, deps.cache, deps.ledger, refused())), 'application/yaml');
        if (role === 'edge' && node) {
          return reply(200, toYaml(dumpProxy(edgeKey(node), deps.cache, deps.ledger, refused(`${node}.`))), 'application/yaml');
        }
        return reply(400, 'usage: /dump?role=cloud or /dump?role=edge&node=<node name>\n');
      }
      default:
        return reply(404, 'endpoints: /healthz /metrics /proxies /dump\n');
    }
  });
}
