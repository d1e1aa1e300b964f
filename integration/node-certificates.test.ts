// Edge tunnel certificates from the Kubernetes CSR API, against the real kube-apiserver (Node and RBAC
// authorizers): each edge's certificate agent makes its key on the node and asks as the node itself
// (its kubelet's client certificate), the xDS server approves and signs as ServiceAccount
// edge-tunnel-xds with the shipped RBAC, certificates live 30 s here so that renewal (at two thirds)
// happens many times in one run. Nothing is copied: the edge directories hold only what the agents
// wrote. Shown: issuance at start, least privilege, a node asking for another's name, renewal under
// load, a stopped signer visible before anything expires, a deleted node's renewal, an expired
// certificate refused at the handshake, and a CA rollover with tunnels up throughout.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { promisify } from 'node:util';
import { bundlePaths, caFiles } from '../certs/bundle.js';
import { finishRollover, reissueAll, startRollover } from '../certs/rollover.js';
import { EnvoyAdmin, envoyOwnSerials, monitor, runDir, serialOfPem, waitFor } from './harness/index.js';
import { toolPath } from './kube/cluster.js';
import { EdgeCluster, criLine, nodeObject, signerCaDir } from './kube/edge-cluster.js';
import { stepsWithLogs } from './topology.js';

const ROOT = join(import.meta.dirname, '..');
const run = promisify(execFile);
const SIGNER = 'edge-tunnel.io/edge-node';

interface CsrItem {
  metadata: { name: string };
  spec: { signerName: string; username: string };
  status?: { certificate?: string; conditions?: { type: string; reason?: string; message?: string }[] };
}

async function cli(script: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
  );
}

describe('edge certificates from the CSR API: issued, renewed, refused, rolled over', { concurrency: false }, () => {
  let edge: EdgeCluster;
  const step = stepsWithLogs(() => edge?.describeFailure());
  const kubectl = (...args: string[]) => edge.cluster.kubectl(args);
  const edgeDir = (node: string): string => edge.topology.edgeTlsDir(node);
  const certificate = (node: string): X509Certificate => new X509Certificate(readFileSync(join(edgeDir(node), 'tls.crt')));
  const requests = async (): Promise<CsrItem[]> => ((JSON.parse((await kubectl('get', 'csr', '-o', 'json')).stdout) as { items: CsrItem[] }).items).filter((i) => i.spec.signerName === SIGNER);
  const status = (...args: string[]) => cli('xds/cli/main.ts', 'status', '--admin', edge.topology.xdsAdminUrl, '-o', 'json', ...args);
  const logsOk = async (pod: string, node: string): Promise<void> => {
    const { stdout } = await kubectl('logs', pod);
    if (!stdout.includes(`hello from a pod on ${node}`)) throw new Error(`kubectl logs ${pod}: ${JSON.stringify(stdout)}`);
  };
  const tunnelReady = async (node: string): Promise<string> =>
    (await kubectl('get', 'node', node, '-o', 'jsonpath={.status.conditions[?(@.type=="EdgeTunnelReady")].status}').catch(() => ({ stdout: '' }))).stdout;

  before(async () => {
    edge = await EdgeCluster.start({
      nodes: [
        { name: 'edge-a', ip: '192.0.2.11', podCIDR: '198.51.100.0/26' },
        { name: 'edge-b', ip: '192.0.2.12', podCIDR: '198.51.100.64/26' },
      ],
      nodeCertificates: { lifetime: '30s' },
    });
    await edge.runPod('edge-a', 'app-a');
    await edge.runPod('edge-b', 'app-b');
    for (const node of ['edge-a', 'edge-b']) await edge.startCertificateAgent(node);
  });
  after(async () => edge?.stop());

  step('edge-a and edge-b got their tunnel certificates through the CSR API at start, nothing copied', async () => {
    const items = await requests();
    for (const node of ['edge-a', 'edge-b']) {
      const mine = items.filter((i) => i.spec.username === `system:node:${node}`);
      assert.ok(mine.length >= 1, `a request by system:node:${node}`);
      const approved = mine[0].status?.conditions?.find((c) => c.type === 'Approved');
      assert.equal(approved?.reason, 'EdgeTunnelNodeIdentity');
      assert.ok(mine[0].status?.certificate, 'issued');
      const cert = certificate(node);
      assert.equal(cert.subjectAltName, `DNS:${node}, URI:spiffe://edge-tunnel/edge/${node}`);
      assert.equal(cert.issuer, new X509Certificate(readFileSync(bundlePaths(edge.topology.certs).ca)).subject);
      assert.ok(Date.parse(cert.validTo) - Date.parse(cert.validFrom) <= 34_000, `lives about 30 s: ${cert.validFrom} → ${cert.validTo}`);
      // The certificate the node runs is one a request of its own was issued.
      const issued = mine.flatMap((i) => (i.status?.certificate ? [serialOfPem(Buffer.from(i.status.certificate, 'base64'))] : []));
      assert.ok(issued.includes(serialOfPem(readFileSync(join(edgeDir(node), 'tls.crt')))), 'the file is an issued request');
    }
    await logsOk('app-a', 'edge-a');
    await logsOk('app-b', 'edge-b');
    const report = await status();
    assert.equal(report.code, 0, report.stdout);
  });

  step('least privilege: nodes may only request, the xDS server may only approve and sign for its signer (kubectl auth can-i)', async () => {
    const can = async (...args: string[]): Promise<string> => (await kubectl('auth', 'can-i', ...args).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }))).stdout.trim();
    // The node asks with its own credentials (its kubelet's client certificate), not by impersonation.
    const asNode = ['--kubeconfig', await edge.nodeKubeconfig('edge-a')];
    const asXds = ['--as=system:serviceaccount:edge-tunnel:edge-tunnel-xds'];
    assert.equal(await can('create', 'certificatesigningrequests.certificates.k8s.io', ...asNode), 'yes');
    assert.equal(await can('update', 'certificatesigningrequests.certificates.k8s.io', '--subresource=approval', ...asNode), 'no');
    // A signer's name holds a "/", which `kubectl auth can-i` cannot pass: the same review, written out
    // (what kube-apiserver asks when a request is approved or signed).
    const signers = async (user: string, groups: string[], verb: string, signer: string): Promise<boolean> => {
      const review = { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user, groups, resourceAttributes: { group: 'certificates.k8s.io', resource: 'signers', name: signer, verb } } };
      const { stdout } = await edge.cluster.kubectl(['create', '-f', '-', '-o', 'jsonpath={.status.allowed}'], { input: JSON.stringify(review) });
      return stdout === 'true';
    };
    const xdsUser = ['system:serviceaccount:edge-tunnel:edge-tunnel-xds', ['system:serviceaccounts', 'system:serviceaccounts:edge-tunnel', 'system:authenticated']] as const;
    const nodeUser = ['system:node:edge-a', ['system:nodes', 'system:authenticated']] as const;
    assert.equal(await signers(nodeUser[0], [...nodeUser[1]], 'approve', SIGNER), false);
    assert.equal(await signers(xdsUser[0], [...xdsUser[1]], 'approve', SIGNER), true);
    assert.equal(await signers(xdsUser[0], [...xdsUser[1]], 'sign', SIGNER), true);
    assert.equal(await signers(xdsUser[0], [...xdsUser[1]], 'approve', 'kubernetes.io/kube-apiserver-client'), false);
    assert.equal(await signers(xdsUser[0], [...xdsUser[1]], 'sign', 'kubernetes.io/kubelet-serving'), false);
    assert.equal(await can('create', 'certificatesigningrequests.certificates.k8s.io', ...asXds), 'no');
    assert.equal(await can('get', 'secrets', '-A', ...asXds), 'no');
  });

  step("edge-a's credentials asking for edge-b's name are denied, with the reason on the request", async () => {
    const scratch = mkdtempSync(join(runDir(), 'impostor-'));
    const impostor = await cli('agent-bootstrap/cli.ts', 'certificate', '--once', '--node', 'edge-b', '--dir', scratch, '--kubeconfig', await edge.nodeKubeconfig('edge-a'), '--timeout', '30s');
    assert.equal(impostor.code, 1);
    assert.match(impostor.stderr, /denied: NotThisNode: node edge-a may ask only for its own identity: common name "edge-a", not "edge-b"/);
    const denied = (await requests()).find((i) => i.status?.conditions?.some((c) => c.type === 'Denied' && c.reason === 'NotThisNode'));
    assert.equal(denied?.spec.username, 'system:node:edge-a');
    assert.equal(denied?.status?.certificate, undefined, 'nothing issued');
  });

  step('renewal at two thirds of the lifetime: new certificates, taken by Envoy, no request failed, a kept log stream still streaming', async (t) => {
    const admin = new EnvoyAdmin(edge.topology.edgeAdminPort('edge-a'));
    const follow = spawn(toolPath('kubectl'), ['--kubeconfig', edge.cluster.kubeconfig, 'logs', '-f', 'app-a'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let followed = '';
    follow.stdout.on('data', (chunk: Buffer) => (followed += chunk.toString()));
    const load = monitor(async () => {
      await logsOk('app-a', 'edge-a');
      await logsOk('app-b', 'edge-b');
    });
    try {
      const seen = new Set(await envoyOwnSerials(admin));
      await waitFor('edge-a\'s Envoy to run two renewed certificates', async () => {
        for (const serial of await envoyOwnSerials(admin)) seen.add(serial);
        return seen.size >= 3;
      }, { timeoutMs: 60_000, intervalMs: 500 });
      appendFileSync(edge.logsFile('edge-a'), criLine('after the renewals'));
      await waitFor('the kept log stream gets the new line', () => followed.includes('after the renewals'), { timeoutMs: 10_000 });
    } finally {
      follow.kill();
      const { rounds, failures } = await load.stop();
      t.diagnostic(`${rounds} rounds of kubectl logs to both nodes during two renewals, ${failures.length} failed`);
      assert.deepEqual(failures, [], 'no request failed through the renewals');
    }
    assert.equal(await tunnelReady('edge-a'), 'True');
  });

  step('a stopped signer shows in xds status and metrics before any certificate expires; back, it catches up', async () => {
    const key = join(signerCaDir(edge.topology.dir), 'ca.key');
    renameSync(key, `${key}.away`);
    try {
      const report = await waitFor('xds status reports the signer', async () => {
        const result = await status('--stale-after', '3');
        const parsed = JSON.parse(result.stdout) as { problems: { kind: string; detail: string }[] };
        return result.code === 3 && parsed.problems.some((p) => p.kind === 'signer') ? parsed : undefined;
      }, { timeoutMs: 40_000, intervalMs: 500 });
      assert.match(report.problems.find((p) => p.kind === 'signer')?.detail ?? '', /edge certificate request\(s\) waiting, the oldest for \d+ s: edge-tunnel-edge-\S+: .*ca\.key/);
      for (const node of ['edge-a', 'edge-b']) assert.ok(Date.parse(certificate(node).validTo) > Date.now(), `${node}'s certificate has not expired yet`);
      const metrics = await (await fetch(`${edge.topology.xdsAdminUrl}/metrics`)).text();
      assert.match(metrics, /^xds_certificate_requests_waiting [1-9]/m);
      assert.match(metrics, /^xds_certificate_signer_errors_total [1-9]/m);
    } finally {
      renameSync(`${key}.away`, key);
    }
    await waitFor('nothing waiting, status clean', async () => (await status('--stale-after', '3')).code === 0, { timeoutMs: 40_000, intervalMs: 500 });
    await waitFor('both nodes reachable', async () => (await Promise.all([logsOk('app-a', 'edge-a'), logsOk('app-b', 'edge-b')]).then(() => true, () => false)), { timeoutMs: 30_000 });
  });

  step('a deleted Node cannot renew: denied, with the reason', async () => {
    await kubectl('delete', 'node', 'edge-b', '--wait=false');
    try {
      const renewal = await cli('agent-bootstrap/cli.ts', 'certificate', '--once', '--node', 'edge-b', '--dir', mkdtempSync(join(runDir(), 'deleted-')), '--kubeconfig', await edge.nodeKubeconfig('edge-b'), '--timeout', '30s');
      assert.equal(renewal.code, 1);
      assert.match(renewal.stderr, /denied: NodeNotFound: Node edge-b does not exist: a deleted node gets no certificate/);
    } finally {
      await edge.cluster.apply(nodeObject(edge.spec('edge-b')));
    }
  });

  step('a certificate nobody renewed is refused at the handshake and counted; its agent back, the node is too', async () => {
    await edge.stopCertificateAgent('edge-b');
    const expiry = Date.parse(certificate('edge-b').validTo);
    await waitFor("edge-b's certificate expired", () => Date.now() > expiry + 1000, { timeoutMs: 40_000, intervalMs: 500 });
    // New tunnel handshakes: the cloud Envoy restarts, both edges dial again.
    await edge.topology.stopCloud();
    await edge.topology.startCloud();
    const cloud = edge.topology.cloudAdmin;
    const refused = await waitFor('an expired certificate refused at the tunnel handshake', async () => {
      const stats = await cloud.stats();
      const total = [...stats].filter(([name]) => name.endsWith('ssl.fail_verify_error')).reduce((sum, [, v]) => sum + v, 0);
      return total > 0 ? total : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    assert.ok(refused >= 1);
    await waitFor('edge-a back, edge-b not', async () => (await tunnelReady('edge-a')) === 'True' && (await tunnelReady('edge-b')) === 'False', { timeoutMs: 30_000, intervalMs: 500 });
    const report = JSON.parse((await status()).stdout) as { problems: { kind: string; where: string }[] };
    assert.ok(report.problems.some((p) => p.kind === 'certificate' && p.where === 'edge-b'), JSON.stringify(report.problems));
    await edge.startCertificateAgent('edge-b');
    await waitFor('edge-b reachable with a new certificate', async () => (await tunnelReady('edge-b')) === 'True', { timeoutMs: 45_000, intervalMs: 500 });
    await logsOk('app-b', 'edge-b');
  });

  step('a CA rollover with the signer: agents renew from the next CA, tunnels and requests up throughout', async (t) => {
    const certs = edge.topology.certs;
    const signer = signerCaDir(edge.topology.dir);
    const issuerOf = (node: string): string => certificate(node).issuer;
    const load = monitor(async () => {
      await logsOk('app-a', 'edge-a');
      await logsOk('app-b', 'edge-b');
    });
    try {
      const oldIssuer = issuerOf('edge-a');
      // The tunnel prober trusts the cloud's certificate through its own ca.crt (a Secret of its own).
      const proberTrust = join(edge.topology.dir, 'tunnel-probe', 'ca.crt');
      await startRollover(certs);
      // The signer's Secret gets the bundle's trust (old and next) and the next CA's key; the prober's
      // trust, old and next too.
      writeFileSync(join(signer, 'ca.crt'), readFileSync(bundlePaths(certs).ca));
      writeFileSync(join(signer, 'ca.key'), readFileSync(caFiles(certs, 'ca').nextKey));
      writeFileSync(proberTrust, readFileSync(bundlePaths(certs).ca));
      await waitFor('both agents renewed from the next CA', () => issuerOf('edge-a') !== oldIssuer && issuerOf('edge-b') !== oldIssuer, { timeoutMs: 60_000, intervalMs: 500 });
      await reissueAll(certs, 'ca');
      await finishRollover(certs);
      writeFileSync(join(signer, 'ca.crt'), readFileSync(bundlePaths(certs).ca));
      writeFileSync(join(signer, 'ca.key'), readFileSync(bundlePaths(certs).caKey));
      writeFileSync(proberTrust, readFileSync(bundlePaths(certs).ca));
      const finished = new X509Certificate(readFileSync(bundlePaths(certs).ca)).subject;
      await waitFor('a renewal after the rollover, from the CA alone', () => issuerOf('edge-a') === finished && Date.parse(certificate('edge-a').validFrom) > Date.now() - 25_000, { timeoutMs: 60_000, intervalMs: 500 });
    } finally {
      const { rounds, failures } = await load.stop();
      t.diagnostic(`${rounds} rounds of kubectl logs to both nodes during the rollover, ${failures.length} failed`);
      assert.deepEqual(failures, [], 'no request failed during the rollover');
    }
    // Every probe since the rollover finished went through (the condition is written on change only).
    await waitFor('both edges EdgeTunnelReady', async () => (await tunnelReady('edge-a')) === 'True' && (await tunnelReady('edge-b')) === 'True', { timeoutMs: 10_000, intervalMs: 500 });
  });
});
