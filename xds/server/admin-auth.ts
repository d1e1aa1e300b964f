// Who may read the secure admin endpoint. Two ways in, chosen with `xds serve --admin-auth`:
//   certificate  a client certificate from the admin CA (the TLS handshake checks it);
//   token        a bearer token that Kubernetes accepts (TokenReview) and whose user may `get` the
//                request's path as a non-resource URL (SubjectAccessReview), as kube-apiserver's own
//                components delegate it: RBAC `nonResourceURLs: ["/dump", "/status", ...]` grants it.
// /healthz is open to all (it says nothing but "ok" or why not), so HTTPS probes need no credentials.

import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { describeError } from '../sources/kubernetes-watch.js';

export type AdminAuthMode = 'certificate' | 'token';

export const ADMIN_AUTH_MODES: readonly AdminAuthMode[] = ['certificate', 'token'];

/** Paths anyone reaching the secure listener may GET. */
const OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz']);

type AuthDecision = { readonly allowed: true; readonly user: string } | { readonly allowed: false; readonly status: 401 | 403; readonly reason: string };

/** Decides whether the holder of `token` may GET `path`. */
export interface TokenAuthorizer {
  check(token: string, path: string): Promise<AuthDecision>;
}

/** The decision for one request to the secure listener, by the modes it accepts. */
export async function authorize(req: IncomingMessage, path: string, modes: readonly AdminAuthMode[], tokens: TokenAuthorizer | undefined): Promise<AuthDecision> {
  if (OPEN_PATHS.has(path)) return { allowed: true, user: 'anyone' };
  const socket = req.socket as TLSSocket;
  if (modes.includes('certificate') && socket.authorized) {
    const subject = socket.getPeerCertificate().subject as { CN?: string } | undefined;
    return { allowed: true, user: `certificate ${subject?.CN ?? '(no CN)'}` };
  }
  const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
  if (modes.includes('token') && tokens && bearer) return tokens.check(bearer, path);
  const accepted = modes.map((m) => (m === 'certificate' ? 'a client certificate from the admin CA' : 'a Kubernetes bearer token')).join(' or ');
  return { allowed: false, status: 401, reason: `${accepted} is required` };
}

interface CachedDecision {
  readonly decision: AuthDecision;
  readonly until: number;
}

/**
 * Bearer tokens checked against the cluster: TokenReview says who the token belongs to,
 * SubjectAccessReview whether that user may `get` the path. Decisions are cached for `ttlMs` (by a
 * hash of the token, never the token), so an audit loop costs the API server two calls per path per
 * TTL, not per request. An API server that cannot be asked is a refusal (503), except for a token and
 * path allowed within the last `staleIfErrorMs`: Prometheus keeps scraping (and alerting on) the xDS
 * server through an API server outage, which is exactly when its metrics matter.
 */
export class KubernetesTokenAuthorizer implements TokenAuthorizer {
  private readonly authentication: AuthenticationV1Api;
  private readonly authorization: AuthorizationV1Api;
  private readonly cache = new Map<string, CachedDecision>();

  constructor(
    kubeConfig: KubeConfig,
    private readonly ttlMs = 10_000,
    private readonly maxEntries = 4096,
    private readonly now: () => number = Date.now,
    private readonly staleIfErrorMs = 5 * 60_000,
  ) {
    this.authentication = kubeConfig.makeApiClient(AuthenticationV1Api);
    this.authorization = kubeConfig.makeApiClient(AuthorizationV1Api);
  }

  async check(token: string, path: string): Promise<AuthDecision> {
    const key = `${createHash('sha256').update(token).digest('hex')} ${path}`;
    const cached = this.cache.get(key);
    if (cached && cached.until > this.now()) return cached.decision;
    let decision: AuthDecision;
    try {
      decision = await this.review(token, path);
    } catch (error) {
      if (cached?.decision.allowed && cached.until + this.staleIfErrorMs > this.now()) return cached.decision;
      throw error;
    }
    // An unknown token is not remembered: random tokens must not push the real decisions out.
    if (!decision.allowed && decision.status === 401) return decision;
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value ?? '');
    this.cache.set(key, { decision, until: this.now() + this.ttlMs });
    return decision;
  }

  private async review(token: string, path: string): Promise<AuthDecision> {
    let user;
    try {
      const review = await this.authentication.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } });
      if (!review.status?.authenticated || !review.status.user?.username) {
        return { allowed: false, status: 401, reason: `the token was not accepted by Kubernetes${review.status?.error ? `: ${review.status.error}` : ''}` };
      }
      user = review.status.user;
      const access = await this.authorization.createSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: { user: user.username, groups: user.groups, uid: user.uid, extra: user.extra, nonResourceAttributes: { path, verb: 'get' } },
        },
      });
      if (access.status?.allowed) return { allowed: true, user: user.username ?? '' };
      return { allowed: false, status: 403, reason: `${user.username} may not get ${path}${access.status?.reason ? ` (${access.status.reason})` : ''}: grant nonResourceURLs ["${path}"] verb get (ClusterRole edge-tunnel-auditor)` };
    } catch (error) {
      // Not cached as a refusal for long: the API server may be back in a moment.
      throw new AuthUnavailableError(`Kubernetes could not review the token: ${describeError(error)}`);
    }
  }
}

/** The API server could not be asked; the request is refused with 503 and nothing is cached. */
export class AuthUnavailableError extends Error {}
