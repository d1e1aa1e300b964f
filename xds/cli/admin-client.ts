// How the audit commands reach a running xDS server: GET on its admin endpoint (loopback by default;
// in a cluster through `kubectl exec` or `kubectl port-forward`), over HTTPS with a client certificate
// when the server's admin endpoint requires one (`xds serve --admin-tls-dir`).

import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';

export const DEFAULT_ADMIN = 'http://127.0.0.1:18001';

/** The audit commands' exit status for "the answer is bad" (refused, a problem, a difference), apart from 1 (the command failed) and 2 (usage). */
export const PROBLEM_EXIT = 3;

/** The parseArgs options every audit command takes to reach the admin endpoint. */
export const ADMIN_OPTIONS = {
  admin: { type: 'string', default: DEFAULT_ADMIN },
  'admin-tls-dir': { type: 'string' },
} as const;

export const ADMIN_HELP = `  --admin URL              the server's admin endpoint (default ${DEFAULT_ADMIN})
  --admin-tls-dir DIR      for an https:// admin endpoint: tls.crt and tls.key (a client certificate
                           the server's --admin-tls-dir CA signed) and ca.crt (its certificate's CA)`;

export interface AdminTarget {
  readonly url: string;
  readonly tlsDir?: string;
}

/** GETs `path` with `params` from the admin endpoint; the body, or an error naming the URL and status. */
export async function getFromAdmin(target: AdminTarget | string, path: string, params: Record<string, string | undefined> = {}): Promise<string> {
  const { url: base, tlsDir } = typeof target === 'string' ? { url: target, tlsDir: undefined } : target;
  const url = new URL(path, base);
  for (const [key, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(key, value);
  const tls = url.protocol === 'https:' && tlsDir ? { cert: readFileSync(join(tlsDir, 'tls.crt')), key: readFileSync(join(tlsDir, 'tls.key')), ca: readFileSync(join(tlsDir, 'ca.crt')) } : {};
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const request = (url.protocol === 'https:' ? https : http).get(url, { ...tls, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      response.on('error', reject);
    });
    request.on('error', (error) => reject(new Error(`cannot reach the xDS server's admin endpoint at ${base}: ${error.message}`)));
  });
  if (status < 200 || status > 299) throw new Error(`${url}: HTTP ${status}: ${body.trim()}`);
  return body;
}
