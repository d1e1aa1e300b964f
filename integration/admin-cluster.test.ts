// Operating the xDS server in a cluster, against the real kube-apiserver: `xds status --admin-service`
// finds every replica from the Service's EndpointSlices and reaches each one's secure admin listener
// with the caller's bearer token, which the replica checks with TokenReview and SubjectAccessReview
// (the shipped ClusterRole edge-tunnel-auditor grants it; `kubectl auth can-i` agrees); a real
// Prometheus scrapes both replicas with a token and the cloud Envoy's stats, loads the example alert
// rules, and the node-unreachable, certificate-expiry and source-stale alerts fire when they should.
//
// Replica xds-0 is the topology's own server (every proxy is connected to it), listening on this
// host's address on a pod link; replica xds-1 runs in that pod network, at the pod IP, with no proxy.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { bundlePaths, writeTlsDir } from '../certs/bundle.js';
import { createAuthority, issue } from '../certs/issue.js';
import { createPodNetwork, freePort, runDir, waitFor, type PodNetwork } from './harness/index.js';
import { startPrometheus, type Prometheus } from './harness/prometheus.js';
import { EdgeCluster } from './kube/edge-cluster.js';
import { CLOUD_SERVER_NAME, stepsWithLogs } from './topology.js';

const ROOT = join(import.meta.dirname, '..');
const run = promisify(execFile);
const HOST_IP = '10.247.0.1';
const POD_IP = '10.247.0.2';
const NAMESPACE = 'edge-tunnel';
const SERVICE = 'edge-tunnel-xds';
const SERVER_NAME = `${SERVICE}.${NAMESPACE}.svc`;

/** Runs `xds <args>`; resolves to its exit status and output. */
async function xds(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', 'xds/cli/main.ts', ...args], { cwd: ROOT }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
  );
}

/** An HTTPS GET without credentials; resolves to the status. */
function anonymousGet(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, servername: SERVER_NAME, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the xDS server in a cluster: replicas found, tokens reviewed, metrics scraped, alerts fired', { concurrency: false }, () => {
  const dir = mkdtempSync(join(runDir(), 'admin-cluster-'));
  let edge: EdgeCluster;
  let network: PodNetwork;
  let prometheus: Prometheus;
  let adminPort: number;
  const adminUrl = (ip: string): string => `https://${ip}:${adminPort}`;
  const step = stepsWithLogs(() => edge?.describeFailure());

  /** Audit flags of a caller using `who`'s kubeconfig (and so its token), reaching every replica through the Service. */
  const asCaller = (who: string): string[] => ['--admin-service', `${NAMESPACE}/${SERVICE}`, '--kubeconfig', join(dir, `${who}.kubeconfig`), '--admin-ca', join(dir, 'admin-ca.crt')];

  before(async () => {
    network = await createPodNetwork(POD_IP, HOST_IP);
    adminPort = await freePort();
    const adminCa = await createAuthority('admin CA');
    writeFileSync(join(dir, 'admin-ca.crt'), adminCa.cert);
    const serving = (hours: number) => issue(adminCa, { commonName: 'xds admin', dnsNames: [SERVER_NAME], usage: 'server', notAfter: new Date(Date.now() + hours * 3_600_000) });
    writeTlsDir(join(dir, 'xds-0'), await serving(48), { 'ca.crt': adminCa.cert });
    // xds-1's admin certificate expires in two hours: EdgeTunnelCertificateExpiring must fire for it.
    writeTlsDir(join(dir, 'xds-1'), await serving(2), { 'ca.crt': adminCa.cert });
    writeTlsDir(join(dir, 'operator'), await issue(adminCa, { commonName: 'operator', usage: 'client' }), { 'ca.crt': adminCa.cert });
    const clusterDir = mkdtempSync(join(runDir(), 'cluster-'));
    edge = await EdgeCluster.start({
      dir: clusterDir,
      nodes: [{ name: 'edge-a', ip: '192.0.2.11', podCIDR: '198.51.100.0/26' }],
      apiserverIps: [HOST_IP],
      serveArgs: [
        '--secure-admin', `${HOST_IP}:${adminPort}`, '--admin-tls-dir', join(dir, 'xds-0'), '--admin-auth', 'certificate,token',
        '--replica', 'xds-0', '--leader-election-lease', '3',
      ],
    });
    const { cluster } = edge;
    // The shipped RBAC (the xDS ServiceAccount's token review grant, the auditor roles), an auditor and
    // a nobody who may find the replicas but read nothing from them.
    await cluster.kubectl(['create', 'namespace', NAMESPACE]);
    await cluster.kubectl(['apply', '-n', NAMESPACE, '-f', join(ROOT, 'k8s', 'base', 'rbac.yaml')]);
    for (const who of ['auditor', 'nobody']) {
      await cluster.kubectl(['create', 'serviceaccount', who, '-n', NAMESPACE]);
      await cluster.kubectl(['create', 'rolebinding', `${who}-finds-replicas`, '-n', NAMESPACE, '--role', 'edge-tunnel-auditor', `--serviceaccount=${NAMESPACE}:${who}`]);
      const { stdout: token } = await cluster.kubectl(['create', 'token', who, '-n', NAMESPACE]);
      writeFileSync(join(dir, `${who}.token`), token.trim());
      const kubeconfig = parse(readFileSync(cluster.kubeconfig, 'utf8')) as { users: { user: { token: string } }[] };
      kubeconfig.users[0].user.token = token.trim();
      writeFileSync(join(dir, `${who}.kubeconfig`), stringify(kubeconfig), { mode: 0o600 });
    }
    await cluster.kubectl(['create', 'clusterrolebinding', 'auditor-reads-xds', '--clusterrole', 'edge-tunnel-auditor', `--serviceaccount=${NAMESPACE}:auditor`]);
    // The shipped Service, and the endpoints the EndpointSlice controller would write for two replicas.
    const [service] = readFileSync(join(ROOT, 'k8s', 'base', 'xds-services.yaml'), 'utf8').split(/^---$/m);
    await cluster.kubectl(['apply', '-n', NAMESPACE, '-f', '-'], { input: service });
    await cluster.apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${SERVICE}-1`, namespace: NAMESPACE, labels: { 'kubernetes.io/service-name': SERVICE } },
      addressType: 'IPv4',
      endpoints: [HOST_IP, POD_IP].map((ip, i) => ({ addresses: [ip], conditions: { ready: true }, targetRef: { kind: 'Pod', name: `xds-${i}`, namespace: NAMESPACE } })),
      ports: [{ name: 'grpc-xds', port: 18000, protocol: 'TCP' }, { name: 'https-admin', port: adminPort, protocol: 'TCP' }],
    });
    // Replica xds-1 in the pod network, reaching the API server at this host's address on the link.
    const replica = await edge.topology.processes.start({
      name: 'xds-1',
      command: network.exec[0],
      args: [
        ...network.exec.slice(1), process.execPath, '--import', 'tsx', join(ROOT, 'xds/cli/main.ts'), 'serve',
        '--kubeconfig', cluster.kubeconfigFor(HOST_IP, join(dir, 'xds-1.kubeconfig')), '--tls-dir', bundlePaths(join(clusterDir, 'certs')).xdsDir,
        '--listen', `${POD_IP}:${await freePort()}`, '--secure-admin', `${POD_IP}:${adminPort}`, '--admin-tls-dir', join(dir, 'xds-1'), '--admin-auth', 'token', '--replica', 'xds-1',
        // A prober like xds-0's, reaching the cloud Envoy's CONNECT listener from the pod network; it
        // probes only while it holds the Lease.
        '--cloud-server-name', CLOUD_SERVER_NAME, '--tunnel-probe-interval', '1', '--tunnel-probe-connect', `${HOST_IP}:${edge.topology.connectPort}`,
        '--tunnel-probe-tls-dir', join(clusterDir, 'tunnel-probe'), '--leader-election-lease', '3',
      ],
      cwd: ROOT,
    });
    await waitFor('replica xds-1 answering', async () => {
      if (replica.exitInfo() !== undefined) throw new Error(`xds-1 exited:\n${replica.logTail(30)}`);
      return (await anonymousGet(`${adminUrl(POD_IP)}/healthz`, adminCa.cert).catch(() => 0)) === 200;
    }, { timeoutMs: 30_000 });

    // Prometheus: both replicas with the auditor's token, and the cloud Envoy's own stats.
    const rules = readFileSync(join(ROOT, 'k8s', 'examples', 'prometheus-alerts.yaml'), 'utf8').replace(/^(\s+)for: \S+$/gm, '$1for: 0s');
    writeFileSync(join(dir, 'alerts.yaml'), rules);
    const config = {
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: [join(dir, 'alerts.yaml')],
      scrape_configs: [
        {
          job_name: 'edge-tunnel-xds',
          scheme: 'https',
          authorization: { credentials_file: join(dir, 'auditor.token') },
          tls_config: { ca_file: join(dir, 'admin-ca.crt'), server_name: SERVER_NAME },
          static_configs: [{ targets: [`${HOST_IP}:${adminPort}`, `${POD_IP}:${adminPort}`] }],
        },
        { job_name: 'edge-tunnel-cloud', metrics_path: '/stats/prometheus', static_configs: [{ targets: [`127.0.0.1:${edge.topology.cloudAdmin.port}`] }] },
      ],
    };
    writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
    prometheus = await startPrometheus(edge.topology.processes, { name: 'prometheus', config: join(dir, 'prometheus.yml'), dataDir: join(dir, 'prometheus'), host: '127.0.0.1', port: await freePort() });
  });
  after(async () => {
    await edge?.stop();
    await network?.remove();
  });

  step('xds status finds both replicas from the Service and reports every proxy with the caller\'s token', async () => {
    const result = await xds('status', '-o', 'json', ...asCaller('auditor'));
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    const status = JSON.parse(result.stdout) as { replicas: { replica: string; url: string; proxies: number }[]; proxies: { role: string; proxy: string; replica: string }[] };
    assert.deepEqual(status.replicas.map((r) => [r.replica, r.url]), [['xds-0', adminUrl(HOST_IP)], ['xds-1', adminUrl(POD_IP)]]);
    assert.equal(status.replicas[1].proxies, 0);
    assert.deepEqual(status.proxies.filter((p) => p.role !== 'sidecar').map((p) => `${p.role} ${p.proxy} via ${p.replica}`), ['cloud cloud-1 via xds-0', 'edge edge-a via xds-0']);
    const table = await xds('status', ...asCaller('auditor'));
    assert.match(table.stdout, new RegExp(`^replicas: xds-0 \\(${adminUrl(HOST_IP).replace(/\./g, '\\.')}\\) 2 proxies, xds-1 .* 0 proxies$`, 'm'));
    // dump and route take the same way in (one replica suffices: all hold the same configuration).
    const routed = await xds('route', 'edge-a:10250', ...asCaller('auditor'));
    assert.equal(routed.code, 0, routed.stderr);
    assert.match(routed.stdout, /verdict: tunnel\nnode: edge-a/);
  });

  step('RBAC decides: the auditor may read the admin paths, nobody may not (kubectl auth can-i agrees)', async () => {
    const canI = async (who: string, path: string): Promise<string> =>
      (await edge.cluster.kubectl(['auth', 'can-i', 'get', path, `--as=system:serviceaccount:${NAMESPACE}:${who}`]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }))).stdout.trim();
    assert.equal(await canI('auditor', '/dump'), 'yes');
    assert.equal(await canI('auditor', '/status'), 'yes');
    assert.equal(await canI('nobody', '/dump'), 'no');
    const refused = await xds('dump', '--role', 'cloud', ...asCaller('nobody'));
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /HTTP 403: forbidden: system:serviceaccount:edge-tunnel:nobody may not get \/dump/);
    // The xDS server's own ServiceAccount may review tokens and nothing more than the shipped grants.
    const xdsAccount = `--as=system:serviceaccount:${NAMESPACE}:edge-tunnel-xds`;
    assert.equal((await edge.cluster.kubectl(['auth', 'can-i', 'create', 'tokenreviews.authentication.k8s.io', xdsAccount])).stdout.trim(), 'yes');
    assert.equal((await edge.cluster.kubectl(['auth', 'can-i', 'get', 'secrets', '-A', xdsAccount]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }))).stdout.trim(), 'no');
  });

  step('without credentials only /healthz answers; a token Kubernetes does not know is refused; a client certificate works where allowed', async () => {
    const ca = readFileSync(join(dir, 'admin-ca.crt'), 'utf8');
    for (const ip of [HOST_IP, POD_IP]) {
      assert.equal(await anonymousGet(`${adminUrl(ip)}/healthz`, ca), 200);
      assert.equal(await anonymousGet(`${adminUrl(ip)}/dump?role=cloud`, ca), 401);
      assert.equal(await anonymousGet(`${adminUrl(ip)}/metrics`, ca), 401);
    }
    writeFileSync(join(dir, 'forged.token'), 'eyJhbGciOiJSUzI1NiJ9.forged.token');
    const forged = await xds('status', '--admin', adminUrl(POD_IP), '--admin-ca', join(dir, 'admin-ca.crt'), '--admin-server-name', SERVER_NAME, '--admin-token-file', join(dir, 'forged.token'));
    assert.equal(forged.code, 1);
    assert.match(forged.stderr, /HTTP 401: unauthorized: the token was not accepted by Kubernetes/);
    const certificate = ['--admin-tls-dir', join(dir, 'operator'), '--admin-server-name', SERVER_NAME];
    const byCertificate = await xds('route', 'edge-a:10250', '--admin', adminUrl(HOST_IP), ...certificate);
    assert.equal(byCertificate.code, 0, byCertificate.stderr);
    // xds-1 lets tokens in only (--admin-auth token): a certificate is no way in there.
    const notThere = await xds('route', 'edge-a:10250', '--admin', adminUrl(POD_IP), ...certificate);
    assert.equal(notThere.code, 1);
    assert.match(notThere.stderr, /HTTP 401: unauthorized: a Kubernetes bearer token is required/);
    const metrics = await (await fetch(`${edge.topology.xdsAdminUrl}/metrics`)).text();
    assert.match(metrics, /^xds_admin_requests_total\{path="\/dump",decision="refused"\} [1-9]/m);
  });

  step('Prometheus scrapes both replicas with a token and the cloud Envoy\'s tunnel stats', async () => {
    await waitFor('every target up', async () => (await prometheus.query('count(up == 1)')) === 3, { timeoutMs: 20_000, intervalMs: 500 }).catch(async (error: Error) =>
      assert.fail(`${error.message}; targets:\n${await prometheus.targets()}`),
    );
    assert.equal(await prometheus.query('count(xds_streams{job="edge-tunnel-xds"})') !== undefined, true);
    // Reverse tunnels held by the cloud Envoy's workers (Envoy 1.40 counts them per worker, not per node).
    const tunnels = await waitFor('reverse tunnel stats', async () => prometheus.query('sum({__name__=~"envoy_upstream_reverse_connection_worker_[0-9]+_total_nodes"})'), { timeoutMs: 10_000 });
    assert.ok(tunnels >= 1, `the cloud Envoy's workers hold ${tunnels} nodes`);
  });

  step('the certificate-expiry alert fires for the replica whose admin certificate expires in two hours', async () => {
    await waitFor('EdgeTunnelCertificateExpiring firing', async () => (await prometheus.alerts()).EdgeTunnelCertificateExpiring === 'firing', { timeoutMs: 20_000, intervalMs: 500 });
    const left = (await prometheus.query('min(xds_certificate_expiry_timestamp_seconds{purpose="admin", instance="10.247.0.2:' + adminPort + '"}) - time()')) ?? 0;
    assert.ok(left > 0 && left <= 7200, `xds-1's admin certificate expires in ${left} s`);
    assert.equal(await prometheus.query(`min(xds_certificate_expiry_timestamp_seconds{instance="${HOST_IP}:${adminPort}"}) - time() < 43200`), undefined, "xds-0's certificates are far from expiry");
  });

  step('the node-unreachable alert fires while edge-a\'s Envoy is down and clears when it is back', async () => {
    assert.equal((await prometheus.alerts()).EdgeTunnelNodeUnreachable, undefined);
    await edge.topology.stopEdge('edge-a');
    try {
      await waitFor('EdgeTunnelNodeUnreachable firing', async () => (await prometheus.alerts()).EdgeTunnelNodeUnreachable === 'firing', { timeoutMs: 20_000, intervalMs: 500 });
      assert.equal(await prometheus.query('xds_edge_tunnel_ready{node="edge-a"}'), 0);
    } finally {
      await edge.topology.startEdge('edge-a');
    }
    await waitFor('EdgeTunnelNodeUnreachable cleared', async () => (await prometheus.alerts()).EdgeTunnelNodeUnreachable === undefined, { timeoutMs: 20_000, intervalMs: 500 });
  });

  step('one replica leads the fleet-wide work; when it stops, the other takes the Lease and keeps EdgeTunnelReady in step', async () => {
    const holder = async (): Promise<string> => (await edge.cluster.kubectl(['get', 'lease', 'edge-tunnel-xds', '-n', 'default', '-o', 'jsonpath={.spec.holderIdentity}'])).stdout.trim();
    const condition = async (): Promise<string> =>
      (await edge.cluster.kubectl(['get', 'node', 'edge-a', '-o', 'jsonpath={.status.conditions[?(@.type=="EdgeTunnelReady")].status} {.status.conditions[?(@.type=="EdgeTunnelReady")].reason}'])).stdout;
    const at = (ip: string): string => `instance="${ip}:${adminPort}"`;
    assert.equal(await holder(), 'xds-0');
    await waitFor('xds_leader scraped from both', async () => (await prometheus.query(`xds_leader{${at(HOST_IP)}}`)) === 1 && (await prometheus.query(`xds_leader{${at(POD_IP)}}`)) === 0, { timeoutMs: 10_000, intervalMs: 500 });
    assert.equal(await prometheus.query(`count(xds_edge_tunnel_ready{${at(POD_IP)}})`), undefined, 'a replica that does not lead exports no statuses');
    // xds-0 stops (and releases the Lease); back at once, it finds xds-1 leading and stays a follower.
    await edge.topology.stopXds();
    try {
      await waitFor('xds-1 holds the Lease', async () => (await holder()) === 'xds-1', { timeoutMs: 10_000 });
    } finally {
      await edge.topology.startXds();
    }
    await waitFor('every proxy back on xds-0', async () => (await xds('status', ...asCaller('auditor'))).code === 0, { timeoutMs: 20_000 });
    await edge.topology.stopEdge('edge-a');
    try {
      await waitFor('edge-a EdgeTunnelReady False, from xds-1', async () => (await condition()) === 'False NoTunnel', { timeoutMs: 15_000 });
    } finally {
      await edge.topology.startEdge('edge-a');
    }
    await waitFor('edge-a EdgeTunnelReady True again', async () => (await condition()) === 'True TunnelsUp', { timeoutMs: 15_000 });
    assert.equal(await holder(), 'xds-1');
    await waitFor('the statuses come from xds-1 alone', async () => (await prometheus.query(`count(xds_edge_tunnel_ready{${at(HOST_IP)}})`)) === undefined && (await prometheus.query(`xds_edge_tunnel_ready{${at(POD_IP)}}`)) === 1, { timeoutMs: 10_000, intervalMs: 500 });
  });

  step('with the API server stopped, the source-stale alert fires, scraped with the token allowed before the outage', async () => {
    assert.equal((await prometheus.alerts()).EdgeTunnelSourceStale, undefined);
    await edge.cluster.stopApiserver();
    await waitFor('EdgeTunnelSourceStale firing', async () => (await prometheus.alerts()).EdgeTunnelSourceStale === 'firing', { timeoutMs: 30_000, intervalMs: 500 }).catch(async (error: Error) =>
      assert.fail(`${error.message}; alerts: ${JSON.stringify(await prometheus.alerts())}; targets:\n${await prometheus.targets()}`),
    );
    // Both replicas still scraped: their token decisions outlive the outage for a while.
    assert.equal(await prometheus.query('count(up{job="edge-tunnel-xds"} == 1)'), 2);
  });
});
