// The edge node's certificate agent: makes the tunnel key on the node, asks the Kubernetes CSR API for
// a certificate as the node itself (the kubelet's credentials), and writes tls.key and tls.crt (and
// ca.crt, from the mounted CA bundle) into the directory the edge Envoy watches. Run once before Envoy
// starts (an init container), then renewing at two thirds of each certificate's lifetime (a sidecar):
// Envoy picks the new files up by itself, so the tunnels stay up through every renewal.

import { X509Certificate, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { CertificatesV1Api, type KubeConfig } from '@kubernetes/client-node';
import { edgeRequest, publishTlsFiles } from '../certs/bundle.js';
import { createCertificateRequest, validityOf } from '../certs/csr.js';
import { EDGE_SIGNER } from '../xds/certificates/approval.js';
import { backoffMs } from '../xds/sources/backoff.js';
import { describeError } from '../xds/sources/kubernetes-watch.js';
import type { SourceLogger } from '../xds/sources/source.js';
import { sanEntries } from '../xds/protocol/identity.js';

export interface CertificateAgentOptions {
  /** The node's own credentials (the kubelet's kubeconfig). */
  readonly kubeConfig: KubeConfig;
  readonly node: string;
  /** Where tls.key, tls.crt and ca.crt go: the edge Envoy's certificate directory. */
  readonly dir: string;
  /** The CA bundle edges trust the cloud by (a mounted ConfigMap), copied in as ca.crt when it changes. */
  readonly caFile?: string;
  /** The lifetime asked for (expirationSeconds); the signer may give less. */
  readonly lifetimeSeconds: number;
  /** How long one request may wait for a certificate. */
  readonly timeoutMs: number;
  readonly logger: SourceLogger;
  /** The key file's mode (default 0600; 0640 where Envoy reads it through the directory's group). */
  readonly keyMode?: number;
  /** How often the CA bundle is checked while waiting for the next renewal (default 10 s). */
  readonly checkEveryMs?: number;
}

/** How long after a refused request the agent asks again (the node may have been re-created meanwhile). */
const REFUSED_RETRY_MS = 5 * 60_000;

/** The CSR API's smallest expirationSeconds. */
const MIN_EXPIRATION_SECONDS = 600;

/** The request was refused (denied, or failed at signing): retrying the same request will not help. */
export class RequestRefusedError extends Error {}

/** Asks for one certificate and waits for it; the key never leaves this process until written to `dir`. */
export async function obtainCertificate(options: CertificateAgentOptions): Promise<{ notBefore: Date; notAfter: Date; request: string }> {
  const api = options.kubeConfig.makeApiClient(CertificatesV1Api);
  const { csr, key } = await createCertificateRequest(edgeRequest(options.node));
  // One request per attempt, named after the node so that `kubectl get csr` reads at a glance.
  const name = `edge-tunnel-${options.node.slice(0, 200)}-${randomBytes(4).toString('hex')}`;
  await api.createCertificateSigningRequest({
    body: {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name, labels: { 'app.kubernetes.io/name': 'edge-tunnel', 'edge-tunnel.io/node': options.node.slice(0, 63) } },
      spec: {
        request: Buffer.from(csr).toString('base64'),
        signerName: EDGE_SIGNER,
        usages: ['digital signature', 'client auth'],
        expirationSeconds: Math.max(MIN_EXPIRATION_SECONDS, options.lifetimeSeconds),
      },
    },
  });
  options.logger.info({ request: name, node: options.node }, 'certificate requested');
  const deadline = Date.now() + options.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const current = await api.readCertificateSigningRequest({ name });
    const refused = current.status?.conditions?.find((c) => (c.type === 'Denied' || c.type === 'Failed') && c.status !== 'False');
    if (refused) throw new RequestRefusedError(`request ${name} ${refused.type === 'Denied' ? 'denied' : 'failed'}: ${refused.reason ?? ''}: ${refused.message ?? ''}`);
    const issued = current.status?.certificate;
    if (issued) {
      const certificate = Buffer.from(issued, 'base64').toString('utf8');
      const validity = validityOf(certificate);
      publish(options, { cert: certificate, key }, options.caFile ? readFileSync(options.caFile, 'utf8') : undefined);
      options.logger.info({ request: name, notAfter: validity.notAfter.toISOString(), serial: validity.serialNumber }, 'certificate written');
      return { ...validity, request: name };
    }
    if (Date.now() > deadline) throw new Error(`request ${name} not answered within ${Math.round(options.timeoutMs / 1000)} s (is the edge-tunnel signer running? xds status says)`);
    await delay(Math.min(250 * 2 ** attempt, 2000));
  }
}

/** Writes the key, the certificate and the CA bundle as one version of the directory (publishTlsFiles). */
function publish(options: CertificateAgentOptions, pem: { cert: string; key: string }, ca: string | undefined): void {
  publishTlsFiles(options.dir, {
    'tls.key': { content: pem.key, mode: options.keyMode ?? 0o600 },
    'tls.crt': { content: pem.cert, mode: 0o644 },
    ...(ca !== undefined && { 'ca.crt': { content: ca, mode: 0o644 } }),
  });
}

/** When the certificate in `dir` is due: two thirds into its lifetime; now when there is none or it is not this node's. */
export function renewalDue(dir: string, node: string): number {
  const path = join(dir, 'tls.crt');
  if (!existsSync(path) || !existsSync(join(dir, 'tls.key'))) return 0;
  try {
    const pem = readFileSync(path, 'utf8');
    const { notBefore, notAfter } = validityOf(pem);
    if (!certificateNames(pem).includes(node)) return 0;
    return notBefore.getTime() + ((notAfter.getTime() - notBefore.getTime()) * 2) / 3;
  } catch {
    return 0;
  }
}

/** The DNS names a certificate carries (an edge certificate's is the node name). */
function certificateNames(pem: string): string[] {
  return sanEntries(new X509Certificate(pem).subjectAltName ?? '').flatMap(([type, value]) => (type === 'DNS' ? [value] : []));
}

/**
 * Keeps a valid certificate in `dir` until `signal` aborts: obtains one now if there is none, then
 * renews at two thirds of each lifetime, retrying failures with backoff (1 s doubling to 30 s) and
 * copying the CA bundle in whenever it changes (a CA rollover reaches the edge this way).
 */
export async function runCertificateAgent(options: CertificateAgentOptions, signal: AbortSignal): Promise<void> {
  let failures = 0;
  let caCopied = options.caFile && existsSync(join(options.dir, 'ca.crt')) ? readFileSync(join(options.dir, 'ca.crt'), 'utf8') : undefined;
  const copyCa = (): void => {
    // Before the first certificate there is nothing to update: obtaining one writes the bundle too.
    if (!options.caFile || !existsSync(join(options.dir, 'tls.crt'))) return;
    try {
      const bundle = readFileSync(options.caFile, 'utf8');
      if (bundle === caCopied) return;
      // With the current key and certificate, as one new version: the three files always match.
      const current = { cert: readFileSync(join(options.dir, 'tls.crt'), 'utf8'), key: readFileSync(join(options.dir, 'tls.key'), 'utf8') };
      publish(options, current, bundle);
      caCopied = bundle;
      options.logger.info({ caFile: options.caFile }, 'CA bundle updated');
    } catch (error) {
      options.logger.warn({ caFile: options.caFile, error: describeError(error) }, 'CA bundle not readable; keeping the last one');
    }
  };
  while (!signal.aborted) {
    copyCa();
    const due = renewalDue(options.dir, options.node);
    if (Date.now() < due) {
      await delay(Math.min(due - Date.now(), options.checkEveryMs ?? 10_000), undefined, { signal }).catch(() => undefined);
      continue;
    }
    try {
      await obtainCertificate(options);
      failures = 0;
    } catch (error) {
      failures++;
      // A refusal (a denied request) will not change by asking again at once: each try is a new CSR.
      const waitMs = error instanceof RequestRefusedError ? REFUSED_RETRY_MS : backoffMs(failures);
      options.logger.warn({ node: options.node, error: describeError(error), retryInMs: waitMs }, 'certificate renewal failed');
      await delay(waitMs, undefined, { signal }).catch(() => undefined);
    }
  }
}
