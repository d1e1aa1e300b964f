// A cloud workload for the egress tests, run inside its own pod network namespace until killed: one
// HTTPS server that is at once a validating admission webhook (POST /validate: denies objects labelled
// deny=true), an aggregated API server (GET /apis/demo.edge-tunnel.io/v1alpha1) and a plain service
// (GET /healthz). kube-apiserver reaches it only through its `cluster` egress, that is edge-tunnel.

import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { cert: { type: 'string' }, key: { type: 'string' }, ports: { type: 'string' }, name: { type: 'string' } } });
if (!values.cert || !values.key || !values.ports || !values.name) {
  process.stderr.write('usage: cloud-service-main --name NAME --cert FILE --key FILE --ports P1,P2\n');
  process.exit(2);
}
const name = values.name;
const DEMO_GROUP_VERSION = 'demo.edge-tunnel.io/v1alpha1';

function json(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

interface AdmissionReview {
  request?: { uid?: string; object?: { metadata?: { labels?: Record<string, string> } } };
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'https://service').pathname;
  // Which address was dialed (a ClusterIP or the pod IP) tells the tests how kube-apiserver resolved the Service.
  process.stdout.write(`${req.method} ${path} via ${req.socket.localAddress}:${req.socket.localPort}\n`);
  if (req.method === 'POST' && path === '/validate') {
    const review = JSON.parse(await readBody(req)) as AdmissionReview;
    const denied = review.request?.object?.metadata?.labels?.deny === 'true';
    return json(res, {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: review.request?.uid, allowed: !denied, ...(denied && { status: { code: 403, message: `denied by ${name}` } }) },
    });
  }
  if (req.method === 'GET' && path === `/apis/${DEMO_GROUP_VERSION}`) {
    return json(res, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: DEMO_GROUP_VERSION, resources: [] });
  }
  if (req.method === 'GET' && path === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok from ${name}\n`);
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
}

// One server per port: the Service port (at the ClusterIP) and the target port (at the pod IP).
const tls = { cert: readFileSync(values.cert), key: readFileSync(values.key) };
const ports = values.ports.split(',').map(Number);
await Promise.all(
  ports.map(
    (port) =>
      new Promise<void>((resolve) => {
        const server = createServer(tls, (req, res) => {
          handle(req, res).catch((error: unknown) => res.writeHead(500).end(String(error)));
        });
        server.listen({ port, host: '0.0.0.0' }, resolve);
      }),
  ),
);
process.stdout.write(`listening on ${ports.join(',')}\n`);
process.on('SIGTERM', () => process.exit(0));
