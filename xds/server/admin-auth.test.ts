import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { AuthUnavailableError, KubernetesTokenAuthorizer, authorize, type TokenAuthorizer } from './admin-auth.js';

/** A stand-in API server for the two reviews: token "good" is alice, who may get /status only. */
async function reviewServer(): Promise<{ server: Server; kubeConfig: KubeConfig; calls: string[]; state: { failing: boolean } }> {
  const calls: string[] = [];
  const state = { failing: false };
  const server = createServer((req, res) => {
    if (state.failing) return void res.writeHead(500).end('{"kind":"Status","code":500}');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { spec: { token?: string; user?: string; nonResourceAttributes?: { path: string; verb: string } } };
      calls.push(req.url ?? '');
      res.setHeader('content-type', 'application/json');
      if (req.url?.endsWith('/tokenreviews')) {
        const authenticated = body.spec.token === 'good';
        return res.end(JSON.stringify({ ...body, status: authenticated ? { authenticated, user: { username: 'alice', groups: ['oncall'] } } : { authenticated, error: 'invalid bearer token' } }));
      }
      const attributes = body.spec.nonResourceAttributes;
      const allowed = body.spec.user === 'alice' && attributes?.path === '/status' && attributes.verb === 'get';
      res.end(JSON.stringify({ ...body, status: { allowed, ...(!allowed && { reason: 'no RBAC policy matched' }) } }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'server-token' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return { server, kubeConfig, calls, state };
}

describe('KubernetesTokenAuthorizer', () => {
  let api: Awaited<ReturnType<typeof reviewServer>>;
  before(async () => (api = await reviewServer()));
  after(() => api.server.close());

  it('allows a known user the paths RBAC grants, and says why not otherwise', async () => {
    const authorizer = new KubernetesTokenAuthorizer(api.kubeConfig);
    assert.deepEqual(await authorizer.check('good', '/status'), { allowed: true, user: 'alice' });
    const forbidden = await authorizer.check('good', '/dump');
    assert.equal(forbidden.allowed, false);
    assert.match(forbidden.allowed ? '' : `${forbidden.status} ${forbidden.reason}`, /^403 alice may not get \/dump \(no RBAC policy matched\)/);
    const unknown = await authorizer.check('forged', '/status');
    assert.match(unknown.allowed ? '' : `${unknown.status} ${unknown.reason}`, /^401 the token was not accepted by Kubernetes: invalid bearer token$/);
  });

  it('caches each decision for its TTL, keyed by token and path', async () => {
    let now = 0;
    const authorizer = new KubernetesTokenAuthorizer(api.kubeConfig, 10_000, 100, () => now);
    api.calls.length = 0;
    await authorizer.check('good', '/status');
    await authorizer.check('good', '/status');
    assert.equal(api.calls.length, 2, 'one TokenReview and one SubjectAccessReview');
    await authorizer.check('good', '/dump');
    assert.equal(api.calls.length, 4, 'another path is another decision');
    now = 10_001;
    await authorizer.check('good', '/status');
    assert.equal(api.calls.length, 6, 'asked again once the TTL is over');
  });

  it('keeps a recent allowance through an API server outage, for a while, and never a refusal', async () => {
    let now = 0;
    const authorizer = new KubernetesTokenAuthorizer(api.kubeConfig, 10_000, 100, () => now, 60_000);
    assert.equal((await authorizer.check('good', '/status')).allowed, true);
    assert.equal((await authorizer.check('good', '/dump')).allowed, false);
    api.state.failing = true;
    try {
      now = 30_000;
      assert.deepEqual(await authorizer.check('good', '/status'), { allowed: true, user: 'alice' }, 'allowed 30 s ago: still allowed');
      await assert.rejects(authorizer.check('good', '/dump'), AuthUnavailableError, 'a refusal is not kept: asked again, and the outage shows');
      now = 70_001;
      await assert.rejects(authorizer.check('good', '/status'), AuthUnavailableError, 'past the TTL and the grace, nothing is assumed');
    } finally {
      api.state.failing = false;
    }
  });

  it('refuses, uncached, when the API server cannot be asked', async () => {
    const down = new KubeConfig();
    down.loadFromOptions({ clusters: [{ name: 'c', server: 'http://127.0.0.1:1' }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
    await assert.rejects(new KubernetesTokenAuthorizer(down).check('good', '/status'), AuthUnavailableError);
  });
});

describe('authorize', () => {
  const request = (headers: Record<string, string>, authorized = false): IncomingMessage =>
    ({ headers, socket: { authorized, getPeerCertificate: () => ({ subject: { CN: 'operator' } }) } }) as unknown as IncomingMessage;
  const tokens: TokenAuthorizer = { check: async (token) => (token === 'good' ? { allowed: true, user: 'alice' } : { allowed: false, status: 401, reason: 'bad token' }) };

  it('lets anyone read /healthz', async () => {
    assert.equal((await authorize(request({}), '/healthz', ['certificate'], undefined)).allowed, true);
  });

  it('takes a verified client certificate only where certificates are a way in', async () => {
    assert.deepEqual(await authorize(request({}, true), '/dump', ['certificate'], undefined), { allowed: true, user: 'certificate operator' });
    assert.equal((await authorize(request({}, true), '/dump', ['token'], tokens)).allowed, false);
  });

  it('takes a bearer token only where tokens are a way in, and names what is required otherwise', async () => {
    assert.deepEqual(await authorize(request({ authorization: 'Bearer good' }), '/dump', ['token'], tokens), { allowed: true, user: 'alice' });
    assert.deepEqual(await authorize(request({ authorization: 'Bearer good' }), '/dump', ['certificate'], tokens), {
      allowed: false,
      status: 401,
      reason: 'a client certificate from the admin CA is required',
    });
    assert.deepEqual(await authorize(request({}), '/dump', ['certificate', 'token'], tokens), {
      allowed: false,
      status: 401,
      reason: 'a client certificate from the admin CA or a Kubernetes bearer token is required',
    });
  });
});
