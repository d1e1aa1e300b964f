import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { edgeRequest } from '../../certs/bundle.js';
import { createCertificateRequest, readCertificateRequest, type RequestedNames } from '../../certs/csr.js';
import { contentProblem, nodeVerdict, requestingNode, type RequestFacts } from './approval.js';
import { projectCertificateRequest } from './requests.js';

const asNode = (node: string, usages = ['digital signature', 'client auth']): RequestFacts => ({ username: `system:node:${node}`, groups: ['system:nodes', 'system:authenticated'], usages });

async function requestFor(names: Parameters<typeof createCertificateRequest>[0]): Promise<RequestedNames> {
  return readCertificateRequest((await createCertificateRequest(names)).csr);
}

describe('edge certificate approval', () => {
  it('approves a node asking as itself for exactly its own identity', async () => {
    const requested = await requestFor(edgeRequest('edge-a'));
    assert.equal(contentProblem(asNode('edge-a'), requested), undefined);
    assert.deepEqual(nodeVerdict('edge-a', 'edge', 'node-role.kubernetes.io/edge'), {
      approve: true,
      node: 'edge-a',
      reason: 'EdgeTunnelNodeIdentity',
      message: 'node edge-a asked as itself for its own edge tunnel identity',
    });
  });

  it("denies a node asking for another node's name", async () => {
    const verdict = contentProblem(asNode('edge-a'), await requestFor(edgeRequest('edge-b')));
    assert.equal(verdict?.reason, 'NotThisNode');
    assert.equal(verdict?.message, 'node edge-a may ask only for its own identity: common name "edge-a", not "edge-b"');
  });

  it('denies anything beyond the identity: an extra name, an IP, another URI, server auth', async () => {
    const own = edgeRequest('edge-a');
    const extraName = contentProblem(asNode('edge-a'), await requestFor({ ...own, dnsNames: ['edge-a', 'kubernetes.default.svc'] }));
    assert.match(extraName?.message ?? '', /DNS names "edge-a", not "edge-a", "kubernetes.default.svc"/);
    const ip = contentProblem(asNode('edge-a'), await requestFor({ ...own, ipAddresses: ['10.0.0.1'] }));
    assert.match(ip?.message ?? '', /IP addresses none, not "10.0.0.1"/);
    const uri = contentProblem(asNode('edge-a'), await requestFor({ ...own, uris: ['spiffe://edge-tunnel/cloud/cloud'] }));
    assert.match(uri?.message ?? '', /URIs "spiffe:\/\/edge-tunnel\/edge\/edge-a", not "spiffe:\/\/edge-tunnel\/cloud\/cloud"/);
    const server = contentProblem(asNode('edge-a', ['digital signature', 'client auth', 'server auth']), await requestFor(own));
    assert.equal(server?.reason, 'UsagesNotAllowed');
  });

  it('denies requests not made by a node, and requests whose signature does not hold', async () => {
    const requested = await requestFor(edgeRequest('edge-a'));
    assert.equal(contentProblem({ username: 'system:serviceaccount:default:x', groups: ['system:serviceaccounts'], usages: ['client auth'] }, requested)?.reason, 'NotANode');
    assert.equal(contentProblem({ username: 'system:node:edge-a', groups: ['system:authenticated'], usages: ['client auth'] }, requested)?.reason, 'NotANode', 'the name alone is not enough');
    assert.equal(contentProblem(asNode('edge-a'), { ...requested, signatureValid: false })?.reason, 'BadSignature');
    assert.equal(contentProblem(asNode('edge-a'), { ...requested, keyAlgorithm: 'RSA 1024' })?.reason, 'KeyNotAllowed');
  });

  it('denies a node that does not exist or is no edge', () => {
    assert.equal(nodeVerdict('edge-a', 'missing', 'x').reason, 'NodeNotFound');
    assert.equal(nodeVerdict('edge-a', 'cloud', 'x').reason, 'NotAnEdgeNode');
  });

  it('reads the node from the requester only when it is in system:nodes', () => {
    assert.equal(requestingNode({ username: 'system:node:edge-a', groups: ['system:nodes'] }), 'edge-a');
    assert.equal(requestingNode({ username: 'system:node:edge-a', groups: [] }), undefined);
  });
});

describe('CertificateSigningRequest projection', () => {
  const csr = (signerName: string, status: object = {}): object => ({
    metadata: { name: 'edge-tunnel-edge-a-1', resourceVersion: '7', creationTimestamp: '2026-12-01T10:00:00Z' },
    spec: { signerName, username: 'system:node:edge-a', groups: ['system:nodes'], usages: ['client auth'], request: Buffer.from('PEM').toString('base64'), expirationSeconds: 600 },
    status,
  });

  it('keeps our requests with their state, and drops other signers', () => {
    assert.equal(projectCertificateRequest(csr('kubernetes.io/kube-apiserver-client-kubelet'))?.value, undefined);
    const pending = projectCertificateRequest(csr('edge-tunnel.io/edge-node'))?.value;
    assert.deepEqual(pending, {
      name: 'edge-tunnel-edge-a-1',
      username: 'system:node:edge-a',
      groups: ['system:nodes'],
      usages: ['client auth'],
      request: 'PEM',
      expirationSeconds: 600,
      state: 'pending',
      createdAt: '2026-12-01T10:00:00Z',
    });
    const approved = { conditions: [{ type: 'Approved', status: 'True' }] };
    assert.equal(projectCertificateRequest(csr('edge-tunnel.io/edge-node', approved))?.value?.state, 'approved');
    assert.equal(projectCertificateRequest(csr('edge-tunnel.io/edge-node', { ...approved, certificate: Buffer.from('CERT').toString('base64') }))?.value?.certificate, 'CERT');
    assert.equal(projectCertificateRequest(csr('edge-tunnel.io/edge-node', { conditions: [{ type: 'Denied', status: 'True' }] }))?.value?.state, 'denied');
  });
});
