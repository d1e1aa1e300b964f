// CertificateSigningRequests as the signer sees them: listed and watched like Nodes (the same loop, see
// sources/kubernetes.ts), each projected onto what approval and signing read. Requests for other
// signers are dropped at projection, so kubelets' own CSRs cost nothing here.

import { CertificatesV1Api } from '@kubernetes/client-node';
import { KubernetesWatchSource, type KubernetesSourceOptions } from '../sources/kubernetes.js';
import { objectMeta, type Projected } from '../sources/kubernetes-node.js';
import { EDGE_SIGNER } from './approval.js';

type RequestState = 'pending' | 'approved' | 'issued' | 'denied' | 'failed';

export interface CertificateRequestView {
  readonly name: string;
  readonly username: string;
  readonly groups: readonly string[];
  readonly usages: readonly string[];
  /** The PKCS #10 request, PEM. */
  readonly request: string;
  readonly expirationSeconds?: number;
  readonly state: RequestState;
  /** The issued certificate, PEM. */
  readonly certificate?: string;
  /** When the request was created (ISO 8601). */
  readonly createdAt: string;
}

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** Base64 as the API sends `[]byte` fields; the client's model may hold it as a string or bytes. */
function decoded(value: unknown): string {
  if (typeof value === 'string') return Buffer.from(value, 'base64').toString('utf8');
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return '';
}

function stateOf(status: unknown): RequestState {
  const conditions = Array.isArray(field(status, 'conditions')) ? (field(status, 'conditions') as unknown[]) : [];
  const has = (type: string): boolean => conditions.some((c) => field(c, 'type') === type && field(c, 'status') !== 'False');
  if (has('Denied')) return 'denied';
  if (has('Failed')) return 'failed';
  if (decoded(field(status, 'certificate')) !== '') return 'issued';
  return has('Approved') ? 'approved' : 'pending';
}

/** A CSR for our signer, projected; undefined for any other. */
export function projectCertificateRequest(object: unknown): Projected<CertificateRequestView | undefined> | undefined {
  const { name, resourceVersion } = objectMeta(object);
  if (name === undefined || name === '') return undefined;
  const spec = field(object, 'spec');
  if (field(spec, 'signerName') !== EDGE_SIGNER) return { key: name, resourceVersion: resourceVersion ?? '', value: undefined };
  const status = field(object, 'status');
  const created = field(field(object, 'metadata'), 'creationTimestamp');
  const expiration = field(spec, 'expirationSeconds');
  const certificate = decoded(field(status, 'certificate'));
  return {
    key: name,
    resourceVersion: resourceVersion ?? '',
    value: {
      name,
      username: String(field(spec, 'username') ?? ''),
      groups: strings(field(spec, 'groups')),
      usages: strings(field(spec, 'usages')),
      request: decoded(field(spec, 'request')),
      ...(typeof expiration === 'number' && { expirationSeconds: expiration }),
      state: stateOf(status),
      ...(certificate !== '' && { certificate }),
      createdAt: created instanceof Date ? created.toISOString() : String(created ?? ''),
    },
  };
}

/** Every CertificateSigningRequest for edge-tunnel's signer (others project to nothing and are filtered out by the signer). */
export class CertificateRequestSource extends KubernetesWatchSource<CertificateRequestView | undefined> {
  constructor(options: KubernetesSourceOptions) {
    super(options, {
      resource: 'certificatesigningrequests',
      kind: 'CertificateSigningRequests',
      path: '/apis/certificates.k8s.io/v1/certificatesigningrequests',
      listPage: (kubeConfig, request) => {
        const api = kubeConfig.makeApiClient(CertificatesV1Api);
        return (query) => api.listCertificateSigningRequest(query, request);
      },
      project: projectCertificateRequest,
    });
  }
}
