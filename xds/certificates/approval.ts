// Who gets an edge tunnel certificate from the CSR API: a node, asking as itself (its kubelet's
// credentials, `system:node:<name>` in group `system:nodes`), for exactly its own tunnel identity
// (DNS SAN = its name, URI SAN spiffe://edge-tunnel/edge/<name>, client auth), while its Node exists
// and is an edge node. Anything else is denied with a reason an operator can act on. Pure: the Node
// lookup is done by the caller.

import { edgeRequest } from '../../certs/bundle.js';
import type { RequestedNames } from '../../certs/csr.js';

/** Our signer: CSRs naming it are ours to approve and sign, nobody else's. */
export const EDGE_SIGNER = 'edge-tunnel.io/edge-node';

const NODE_USER = /^system:node:(.+)$/;
const NODES_GROUP = 'system:nodes';
/** Usages an edge tunnel certificate may carry; client auth must be among them. */
const ALLOWED_USAGES = new Set(['digital signature', 'key encipherment', 'client auth']);
const ALLOWED_KEYS = new Set(['ECDSA P-256', 'ECDSA P-384', 'RSA 2048', 'RSA 3072', 'RSA 4096']);

/** The parts of a CertificateSigningRequest the decision reads. */
export interface RequestFacts {
  readonly username: string;
  readonly groups: readonly string[];
  readonly usages: readonly string[];
}

export type Verdict =
  | { readonly approve: true; readonly node: string; readonly reason: string; readonly message: string }
  | { readonly approve: false; readonly node?: string; readonly reason: string; readonly message: string };

/** The node a request was made by, if a node made it. */
export function requestingNode(facts: Pick<RequestFacts, 'username' | 'groups'>): string | undefined {
  const node = NODE_USER.exec(facts.username)?.[1];
  return node !== undefined && facts.groups.includes(NODES_GROUP) ? node : undefined;
}

function list(values: readonly string[]): string {
  return values.length === 0 ? 'none' : values.map((v) => `"${v}"`).join(', ');
}

/** The content check, before the Node is looked up: undefined when the request is exactly the node's own. */
export function contentProblem(facts: RequestFacts, requested: RequestedNames): Verdict | undefined {
  const node = requestingNode(facts);
  if (node === undefined) {
    return { approve: false, reason: 'NotANode', message: `requested by ${facts.username}, not by a node (system:node:<name> in ${NODES_GROUP}): only nodes get edge tunnel certificates` };
  }
  const own = edgeRequest(node);
  const asked = [
    ['common name', [requested.commonName ?? ''], [own.commonName]],
    ['DNS names', requested.dnsNames, own.dnsNames ?? []],
    ['URIs', requested.uris, own.uris ?? []],
    ['IP addresses', requested.ipAddresses, []],
    ['email addresses', requested.emails, []],
  ] as const;
  for (const [what, got, want] of asked) {
    if (got.length !== want.length || got.some((g, i) => g !== want[i])) {
      return { approve: false, node, reason: 'NotThisNode', message: `node ${node} may ask only for its own identity: ${what} ${list(want)}, not ${list(got)}` };
    }
  }
  const extra = facts.usages.filter((u) => !ALLOWED_USAGES.has(u));
  if (extra.length > 0 || !facts.usages.includes('client auth')) {
    return { approve: false, node, reason: 'UsagesNotAllowed', message: `usages must include "client auth" and be among ${list([...ALLOWED_USAGES])}; asked ${list(facts.usages)}` };
  }
  if (!ALLOWED_KEYS.has(requested.keyAlgorithm)) {
    return { approve: false, node, reason: 'KeyNotAllowed', message: `key ${requested.keyAlgorithm} is not one of ${list([...ALLOWED_KEYS])}` };
  }
  if (!requested.signatureValid) return { approve: false, node, reason: 'BadSignature', message: 'the request is not signed by the key it carries' };
  return undefined;
}

/** The decision once the content is the node's own: by what the cluster says of the node. */
export function nodeVerdict(node: string, state: 'edge' | 'cloud' | 'missing', edgeSelector: string): Verdict {
  if (state === 'missing') return { approve: false, node, reason: 'NodeNotFound', message: `Node ${node} does not exist: a deleted node gets no certificate` };
  if (state === 'cloud') return { approve: false, node, reason: 'NotAnEdgeNode', message: `Node ${node} does not match the edge selector ${edgeSelector}: it has no tunnel` };
  return { approve: true, node, reason: 'EdgeTunnelNodeIdentity', message: `node ${node} asked as itself for its own edge tunnel identity` };
}
