// How the audit commands reach a running xDS server: GET on its admin endpoint. Either the URL(s)
// given with --admin (loopback by default, or a `kubectl port-forward`), or every replica found in the
// cluster (--admin-service NAMESPACE/NAME: the ready endpoints of that Service's https-admin port,
// its secure listener). The secure listener takes a client certificate (--admin-tls-dir) or a bearer
// token: --admin-token-file, else the kubeconfig user's own token.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { DiscoveryV1Api, type KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from './kubeconfig.js';
import { UsageError } from './args.js';

export const DEFAULT_ADMIN = 'http://127.0.0.1:18001';

/** The name of the xDS Service's port that carries the secure admin listener (k8s/base/xds-services.yaml). */
const ADMIN_PORT_NAME = 'https-admin';

/** The audit commands' exit status for "the answer is bad" (refused, a problem, a difference), apart from 1 (the command failed) and 2 (usage). */
export const PROBLEM_EXIT = 3;

/** The parseArgs options every audit command takes to reach the admin endpoint. */
export const ADMIN_OPTIONS = {
  admin: { type: 'string' },
  'admin-service': { type: 'string' },
  kubeconfig: { type: 'string' },
  'admin-tls-dir': { type: 'string' },
  'admin-ca': { type: 'string' },
  'admin-token-file': { type: 'string' },
  'admin-server-name': { type: 'string' },
} as const;

export const ADMIN_HELP = `Reaching the xDS server (one of):
  --admin URL              its admin endpoint (default ${DEFAULT_ADMIN}: the loopback listener, from
                           inside the pod or through kubectl port-forward)
  --admin-service NS/NAME  every ready replica behind the Service's ${ADMIN_PORT_NAME} port (its secure
                           listener, at pod IPs: run where the pod network is reachable), found with
                           --kubeconfig PATH (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
Credentials for an https:// endpoint:
  --admin-tls-dir DIR      tls.crt and tls.key: a client certificate of the admin CA; ca.crt: the CA
                           of the endpoint's certificate
  --admin-ca FILE          the CA of the endpoint's certificate (with a token)
  --admin-token-file FILE  a bearer token (default with --admin-service: the kubeconfig user's token)
  --admin-server-name N    the name the endpoint's certificate must carry (default: the URL's host;
                           with --admin-service NAME.NS.svc)`;

export interface AdminTarget {
  readonly url: string;
  /** Client certificate and trusted CA for HTTPS. */
  readonly tlsDir?: string;
  readonly caFile?: string;
  readonly serverName?: string;
  readonly token?: string;
}

export interface AdminFlags {
  readonly admin?: string;
  readonly 'admin-service'?: string;
  readonly kubeconfig?: string;
  readonly 'admin-tls-dir'?: string;
  readonly 'admin-ca'?: string;
  readonly 'admin-token-file'?: string;
  readonly 'admin-server-name'?: string;
}

/** The bearer token the kubeconfig's user sends (a token, a token file, an exec plugin), if any. */
async function kubeconfigToken(kubeConfig: KubeConfig): Promise<string | undefined> {
  // Only the Authorization header is taken: the API server's TLS settings are not the admin endpoint's.
  const scratch: https.RequestOptions = {};
  await kubeConfig.applyToHTTPSOptions(scratch);
  const header = (scratch.headers as Record<string, string> | undefined)?.Authorization;
  return /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1];
}

/** The ready replicas behind `namespace/name`'s https-admin port, from its EndpointSlices. */
async function discoverReplicas(kubeConfig: KubeConfig, namespace: string, name: string): Promise<{ url: string; pod?: string }[]> {
  const slices = await kubeConfig.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({ namespace, labelSelector: `kubernetes.io/service-name=${name}` });
  const replicas = slices.items.flatMap((slice) => {
    const port = slice.ports?.find((p) => p.name === ADMIN_PORT_NAME)?.port;
    if (port === undefined) return [];
    return (slice.endpoints ?? [])
      .filter((endpoint) => endpoint.conditions?.ready !== false && endpoint.addresses.length > 0)
      .map((endpoint) => {
        const address = endpoint.addresses[0];
        return { url: `https://${address.includes(':') ? `[${address}]` : address}:${port}`, pod: endpoint.targetRef?.name };
      });
  });
  if (replicas.length === 0) throw new Error(`no ready endpoint of Service ${namespace}/${name} has a port named ${ADMIN_PORT_NAME} (is --secure-admin on, and the port in the Service?)`);
  return replicas.sort((a, b) => a.url.localeCompare(b.url));
}

/** Every replica the flags name: the --admin URLs (comma-separated), or the Service's ready endpoints. */
export async function adminTargets(flags: AdminFlags): Promise<AdminTarget[]> {
  if (flags.admin !== undefined && flags['admin-service'] !== undefined) throw new UsageError('give --admin or --admin-service, not both');
  const explicitToken = flags['admin-token-file'] === undefined ? undefined : readFileSync(flags['admin-token-file'], 'utf8').trim();
  const common = { tlsDir: flags['admin-tls-dir'], caFile: flags['admin-ca'], serverName: flags['admin-server-name'] };
  if (flags['admin-service'] === undefined) {
    const urls = (flags.admin ?? DEFAULT_ADMIN).split(',').map((a) => a.trim()).filter(Boolean);
    return urls.map((url) => ({ url, ...common, token: explicitToken }));
  }
  const [namespace, name, ...rest] = flags['admin-service'].split('/');
  if (!namespace || !name || rest.length > 0) throw new UsageError(`--admin-service: "${flags['admin-service']}" is not NAMESPACE/NAME`);
  const kubeConfig = loadKubeConfig(flags.kubeconfig, 'default');
  const token = explicitToken ?? (flags['admin-tls-dir'] === undefined ? await kubeconfigToken(kubeConfig) : undefined);
  const replicas = await discoverReplicas(kubeConfig, namespace, name);
  return replicas.map(({ url }) => ({ url, ...common, serverName: common.serverName ?? `${name}.${namespace}.svc`, token }));
}

/** GETs `path` with `params` from the admin endpoint; the body, or an error naming the URL and status. */
export async function getFromAdmin(target: AdminTarget | string, path: string, params: Record<string, string | undefined> = {}): Promise<string> {
  const { url: base, tlsDir, caFile, serverName, token } = typeof target === 'string' ? ({ url: target } as AdminTarget) : target;
  const url = new URL(path, base);
  for (const [key, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(key, value);
  const secure = url.protocol === 'https:';
  const tls: https.RequestOptions = !secure
    ? {}
    : {
        ...(tlsDir && { cert: readFileSync(join(tlsDir, 'tls.crt')), key: readFileSync(join(tlsDir, 'tls.key')), ca: readFileSync(join(tlsDir, 'ca.crt')) }),
        ...(caFile && { ca: readFileSync(caFile) }),
        ...(serverName && { servername: serverName }),
      };
  // A token goes only over HTTPS: on plain HTTP it would be readable by anyone on the path.
  const headers = secure && token ? { authorization: `Bearer ${token}` } : {};
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const request = (secure ? https : http).get(url, { ...tls, headers, agent: false }, (response) => {
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

/** The one replica a command that needs only one asks (all replicas hold the same configuration). */
export async function firstAdminTarget(flags: AdminFlags): Promise<AdminTarget> {
  const [first] = await adminTargets(flags);
  return first;
}
