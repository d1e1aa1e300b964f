// The approver and signer of edge tunnel certificates (signer edge-tunnel.io/edge-node). Every replica
// watches the requests and reports how long they wait (a stopped signer shows before any certificate
// expires); only the leader (the Lease) approves, denies and signs:
//
//   pending  ──approval.ts──▶  Approved (reason, message)  ──sign──▶  status.certificate
//            └──────────────▶  Denied   (reason, message)
//
// Signing checks the request again (an approval written by someone else must still be a node's own
// identity, and the node must still be an edge) and issues a certificate of its own making: the node's
// names, client auth, the requested lifetime capped at --edge-certificate-lifetime and at the CA's end.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificatesV1Api, CoreV1Api, type KubeConfig, type V1CertificateSigningRequest } from '@kubernetes/client-node';
import { Counter, Gauge, type Registry } from 'prom-client';
import { edgeRequest, pemBlocks } from '../../certs/bundle.js';
import { readCertificateRequest, signCertificateRequest, validityOf } from '../../certs/csr.js';
import { loadAuthority, type Authority } from '../../certs/issue.js';
import type { LabelSelector } from '../sources/label-selector.js';
import { describeError, httpStatusOf } from '../sources/kubernetes-watch.js';
import { Repeater } from '../sources/repeater.js';
import type { SourceLogger } from '../sources/source.js';
import { contentProblem, nodeVerdict, requestingNode, type Verdict } from './approval.js';
import type { CertificateRequestView } from './requests.js';

export interface SignerOptions {
  readonly kubeConfig: KubeConfig;
  /** ca.crt (one or more certificates: the one matching the key signs) and ca.key. */
  readonly caDir: string;
  readonly edgeSelector: LabelSelector;
  /** Longest lifetime issued; a request asking less (expirationSeconds) gets less. */
  readonly lifetimeSeconds: number;
  /** True while this replica may approve and sign. */
  readonly isLeader: () => boolean;
  readonly logger: SourceLogger;
  readonly registry?: Registry;
  readonly now?: () => number;
  /** How often waiting requests are retried (failed writes, an unreadable CA), default 5 s. */
  readonly retryMs?: number;
}

/** What `xds status` reports of the signer: requests waiting, and certificates due for renewal. */
export interface SignerStatus {
  readonly waiting: number;
  readonly oldestWaitSeconds: number;
  /** The last signing error, while requests wait. */
  readonly lastError?: string;
  /** Edge nodes whose newest certificate has less than a sixth of its lifetime left (renewal overdue). */
  readonly renewalOverdue: readonly { readonly node: string; readonly notAfter: string }[];
}

/** The smallest lifetime the signer issues, as the CSR API's expirationSeconds minimum. */
export const MIN_LIFETIME_SECONDS = 10;

interface Issued {
  readonly node: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

export class EdgeCertificateSigner {
  private readonly certificates: CertificatesV1Api;
  private readonly core: CoreV1Api;
  private readonly now: () => number;
  private readonly repeater: Repeater;
  private requests: readonly CertificateRequestView[] = [];
  /** Requests whose certificate was already read, so each is parsed once. */
  private readonly seen = new Set<string>();
  /**
   * The newest certificate issued to each node. Kept after its request is gone (kube-controller-manager
   * deletes issued requests after an hour, long before the next renewal); after a restart it fills in
   * as requests are issued again.
   */
  private readonly newest = new Map<string, Issued>();
  /** The edge nodes served now: only theirs are reported (a deleted node is not "overdue"). */
  private served: ReadonlySet<string> | undefined;
  private lastError: string | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private readonly decisions: Counter<'decision' | 'reason'>;
  private readonly errors: Counter;

  constructor(private readonly options: SignerOptions) {
    this.certificates = options.kubeConfig.makeApiClient(CertificatesV1Api);
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.now = options.now ?? Date.now;
    // Through kick, like every run: two runs at once could sign one request twice.
    this.repeater = new Repeater(() => this.kick(), options.retryMs ?? 5000);
    const registers = options.registry ? [options.registry] : [];
    this.decisions = new Counter({ name: 'xds_certificate_requests_decided_total', help: 'Edge certificate requests approved, denied, issued or failed by this replica, by reason', labelNames: ['decision', 'reason'], registers });
    this.errors = new Counter({ name: 'xds_certificate_signer_errors_total', help: 'Approvals or signatures that could not be written (retried)', registers });
    const status = (): SignerStatus => this.status();
    const newest = (): Map<string, Issued> => this.reported();
    new Gauge({
      name: 'xds_certificate_requests_waiting',
      help: 'Edge certificate requests neither issued nor denied: a number that stays up means no replica is signing',
      registers,
      collect() {
        this.set(status().waiting);
      },
    });
    new Gauge({
      name: 'xds_certificate_request_oldest_wait_seconds',
      help: 'How long the oldest waiting edge certificate request has waited (0 when none)',
      registers,
      collect() {
        this.set(status().oldestWaitSeconds);
      },
    });
    new Gauge({
      name: 'xds_edge_certificate_expiry_timestamp_seconds',
      help: 'When the newest certificate issued to each edge node expires (Unix seconds)',
      labelNames: ['node'],
      registers,
      collect() {
        this.reset();
        for (const [node, issued] of newest()) this.set({ node }, issued.notAfter / 1000);
      },
    });
  }

  /** The requests as last listed (the source delivers the whole list on every change). */
  setRequests(requests: readonly (CertificateRequestView | undefined)[]): void {
    this.requests = requests.filter((r): r is CertificateRequestView => r !== undefined);
    const names = new Set(this.requests.map((r) => r.name));
    for (const name of this.seen) if (!names.has(name)) this.seen.delete(name);
    for (const request of this.requests) this.learnIssued(request);
    void this.kick();
  }

  /**
   * The edge nodes served now. Certificates of other nodes are not reported, and forgotten once
   * expired; a node deleted and created again keeps what is known of its certificate.
   */
  retainNodes(nodes: readonly string[]): void {
    this.served = new Set(nodes);
    for (const [node, issued] of this.newest) if (!this.served.has(node) && issued.notAfter < this.now()) this.newest.delete(node);
  }

  start(): void {
    this.repeater.start();
  }

  async stop(): Promise<void> {
    await this.repeater.stop();
    await this.running;
  }

  status(): SignerStatus {
    const waiting = this.requests.filter((r) => r.state === 'pending' || r.state === 'approved');
    const oldest = Math.min(...waiting.map((r) => Date.parse(r.createdAt)).filter(Number.isFinite), this.now());
    const overdue = [...this.reported()]
      // Agents renew at two thirds of the lifetime; past five sixths, renewal has failed for a while.
      .filter(([, c]) => this.now() > c.notBefore + ((c.notAfter - c.notBefore) * 5) / 6)
      .map(([node, c]) => ({ node, notAfter: new Date(c.notAfter).toISOString() }))
      .sort((a, b) => a.node.localeCompare(b.node));
    return {
      waiting: waiting.length,
      oldestWaitSeconds: Math.max(0, Math.round((this.now() - oldest) / 1000)),
      ...(waiting.length > 0 && this.lastError !== undefined && { lastError: this.lastError }),
      renewalOverdue: overdue,
    };
  }

  /** The newest certificate of each served node. */
  private reported(): Map<string, Issued> {
    return new Map([...this.newest].filter(([node]) => this.served?.has(node) ?? true));
  }

  /** Records an issued request's certificate as its node's newest, if it is. */
  private learnIssued(request: CertificateRequestView): void {
    if (request.state !== 'issued' || !request.certificate || this.seen.has(request.name)) return;
    this.seen.add(request.name);
    const node = requestingNode(request);
    if (node === undefined) return;
    try {
      const { notBefore, notAfter } = validityOf(request.certificate);
      if ((this.newest.get(node)?.notAfter ?? 0) < notAfter.getTime()) this.newest.set(node, { node, notBefore: notBefore.getTime(), notAfter: notAfter.getTime() });
    } catch {
      // Not a certificate we can read: it tells nothing about the node's expiry.
    }
  }

  /** Runs process() now, or once more after the run in progress. */
  private async kick(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.process().finally(() => (this.running = undefined));
    await this.running;
    if (this.again) {
      this.again = false;
      await this.kick();
    }
  }

  /** Decides every pending request and signs every approved one, if this replica leads. */
  private async process(): Promise<void> {
    if (!this.options.isLeader()) return;
    for (const request of this.requests) {
      if (!this.options.isLeader()) return;
      try {
        if (request.state === 'pending') await this.decide(request);
        else if (request.state === 'approved') await this.sign(request);
      } catch (error) {
        // A conflict means the request changed under us: the watch brings the new state.
        if (httpStatusOf(error) === 409 || httpStatusOf(error) === 404) continue;
        this.lastError = `${request.name}: ${describeError(error)}`;
        this.errors.inc();
        this.options.logger.warn({ request: request.name, error: describeError(error) }, 'edge certificate request not handled (retried)');
      }
    }
  }

  /** The verdict for a request: its content first, then what the cluster says of the node. */
  private async verdict(request: CertificateRequestView): Promise<Verdict> {
    let requested;
    try {
      requested = await readCertificateRequest(request.request);
    } catch (error) {
      return { approve: false, reason: 'Malformed', message: error instanceof Error ? error.message : String(error) };
    }
    const problem = contentProblem(request, requested);
    if (problem) return problem;
    const node = requestingNode(request) ?? '';
    let labels: Record<string, string> | undefined;
    try {
      labels = (await this.core.readNode({ name: node })).metadata?.labels ?? {};
    } catch (error) {
      if (httpStatusOf(error) !== 404) throw error;
    }
    const state = labels === undefined ? 'missing' : this.options.edgeSelector.matches(labels) ? 'edge' : 'cloud';
    return nodeVerdict(node, state, this.options.edgeSelector.text);
  }

  private async decide(request: CertificateRequestView): Promise<void> {
    const verdict = await this.verdict(request);
    const current = await this.certificates.readCertificateSigningRequest({ name: request.name });
    // Decided meanwhile (by us a moment ago, or by someone else): one decision per request.
    if (current.status?.conditions?.some((c) => c.type === 'Approved' || c.type === 'Denied')) return;
    const condition = { type: verdict.approve ? 'Approved' : 'Denied', status: 'True', reason: verdict.reason, message: verdict.message, lastUpdateTime: new Date() };
    await this.certificates.replaceCertificateSigningRequestApproval({
      name: request.name,
      body: { ...current, status: { ...current.status, conditions: [...(current.status?.conditions ?? []), condition] } },
    });
    this.decisions.inc({ decision: verdict.approve ? 'approved' : 'denied', reason: verdict.reason });
    const log = { request: request.name, requester: request.username, reason: verdict.reason };
    if (verdict.approve) this.options.logger.info(log, 'edge certificate request approved');
    else this.options.logger.warn({ ...log, message: verdict.message }, 'edge certificate request denied');
  }

  private async sign(request: CertificateRequestView): Promise<void> {
    const verdict = await this.verdict(request);
    const current = await this.certificates.readCertificateSigningRequest({ name: request.name });
    // Signed meanwhile (the watch had not told yet): never a second certificate for one request.
    if (current.status?.certificate) return;
    if (!verdict.approve || verdict.node === undefined) {
      await this.writeStatus(current, { conditions: [...(current.status?.conditions ?? []), { type: 'Failed', status: 'True', reason: verdict.reason, message: `not signed: ${verdict.message}`, lastUpdateTime: new Date() }] });
      this.decisions.inc({ decision: 'failed', reason: verdict.reason });
      this.options.logger.warn({ request: request.name, reason: verdict.reason, message: verdict.message }, 'approved edge certificate request not signed');
      return;
    }
    const lifetime = Math.max(MIN_LIFETIME_SECONDS, Math.min(request.expirationSeconds ?? Infinity, this.options.lifetimeSeconds));
    const certificate = await signCertificateRequest(await this.authority(), request.request, { ...edgeRequest(verdict.node), notAfter: new Date(this.now() + lifetime * 1000) });
    await this.writeStatus(current, { certificate: Buffer.from(certificate).toString('base64') });
    this.lastError = undefined;
    this.decisions.inc({ decision: 'issued', reason: verdict.reason });
    const { notAfter, serialNumber } = validityOf(certificate);
    this.options.logger.info({ request: request.name, node: verdict.node, notAfter: notAfter.toISOString(), serial: serialNumber }, 'edge certificate issued');
  }

  private async writeStatus(current: V1CertificateSigningRequest, status: Partial<NonNullable<V1CertificateSigningRequest['status']>>): Promise<void> {
    await this.certificates.replaceCertificateSigningRequestStatus({ name: current.metadata?.name ?? '', body: { ...current, status: { ...current.status, ...status } } });
  }

  private cachedAuthority: { key: string; cert: string; authority: Promise<Authority> } | undefined;

  /** The signing CA, re-read when its files change (a Secret update during a CA rollover). */
  private authority(): Promise<Authority> {
    const cert = readFileSync(join(this.options.caDir, 'ca.crt'), 'utf8');
    const key = readFileSync(join(this.options.caDir, 'ca.key'), 'utf8');
    if (this.cachedAuthority?.cert !== cert || this.cachedAuthority.key !== key) {
      this.cachedAuthority = { cert, key, authority: signingAuthority(cert, key) };
    }
    return this.cachedAuthority.authority;
  }
}

/** The certificate in `certs` (a bundle during a rollover) whose public key is `key`'s. */
async function signingAuthority(certs: string, key: string): Promise<Authority> {
  for (const block of pemBlocks(certs)) {
    const authority = await loadAuthority(block, key).catch(() => undefined);
    if (authority && (await matches(authority))) return authority;
  }
  throw new Error('ca.key matches none of the certificates in ca.crt');
}

/** True when the authority's key signs what its certificate's key verifies. */
async function matches(authority: Authority): Promise<boolean> {
  const { subtle } = globalThis.crypto;
  const algorithm = { name: 'ECDSA', hash: 'SHA-256' };
  const data = new TextEncoder().encode('edge-tunnel signer key check');
  const signature = await subtle.sign(algorithm, authority.keys.privateKey, data);
  return subtle.verify(algorithm, authority.keys.publicKey, signature, data);
}
