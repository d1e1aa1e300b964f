// A small real Kubernetes control plane on loopback for the end-to-end tests and `make demo-k8s`:
// etcd and kube-apiserver (built by `make tools`), with kube-apiserver's `cluster` egress going through
// edge-tunnel's CONNECT listener over mutual TLS, and a token kubeconfig for kubectl.

import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { createAuthority, issue, type Authority } from '../../certs/issue.js';
import { ProcessSet, freePort, waitFor, type ProcessHandle } from '../harness/index.js';

const ROOT = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);

export function toolPath(name: string): string {
  return join(ROOT, '.tools', 'bin', name);
}

export interface EgressProxy {
  /** https://host:port of the CONNECT listener. */
  readonly url: string;
  readonly caFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

export interface ClusterOptions {
  readonly dir: string;
  readonly egress: EgressProxy;
  /** CA that signed the kubelets' serving certificates: kube-apiserver then verifies them end to end. */
  readonly kubeletCaFile?: string;
  readonly processes?: ProcessSet;
  /** More kube-apiserver flags (`--enable-aggregator-routing`). */
  readonly apiserverArgs?: readonly string[];
  /** Addresses besides 127.0.0.1 that clients verify the API server's certificate by (kubeconfigFor). */
  readonly apiserverIps?: readonly string[];
}

export class KubeCluster {
  readonly kubeconfig: string;
  readonly processes: ProcessSet;
  private servingCa = '';
  /** Signs the client certificates kube-apiserver accepts (a node's kubelet credentials). */
  private clientCa: Authority | undefined;
  private apiserver: ProcessHandle | undefined;
  private constructor(
    private readonly options: ClusterOptions,
    readonly apiserverUrl: string,
    /** The admin bearer token (a token file entry in system:masters). */
    readonly token: string,
  ) {
    this.kubeconfig = join(options.dir, 'kubeconfig');
    this.processes = options.processes ?? new ProcessSet();
  }

  static async start(options: ClusterOptions): Promise<KubeCluster> {
    mkdirSync(options.dir, { recursive: true });
    const securePort = await freePort();
    const cluster = new KubeCluster(options, `https://127.0.0.1:${securePort}`, randomBytes(16).toString('hex'));
    try {
      await cluster.boot(securePort);
    } catch (error) {
      process.stderr.write(cluster.processes.describeFailure());
      await cluster.processes.stopAll();
      throw error;
    }
    return cluster;
  }

  private async boot(securePort: number): Promise<void> {
    const { dir } = this.options;
    const [etcdPort, peerPort] = [await freePort(), await freePort()];
    await this.processes.start({
      name: 'etcd',
      command: toolPath('etcd'),
      args: [
        '--name', 'default', '--data-dir', join(dir, 'etcd'),
        '--listen-client-urls', `http://127.0.0.1:${etcdPort}`, '--advertise-client-urls', `http://127.0.0.1:${etcdPort}`,
        '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-cluster', `default=http://127.0.0.1:${peerPort}`, '--log-level', 'warn',
      ],
    });
    await waitFor('etcd healthy', async () => (await fetch(`http://127.0.0.1:${etcdPort}/health`).catch(() => undefined))?.ok, { timeoutMs: 20_000 });

    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(join(dir, 'tokens.csv'), `${this.token},admin,admin,system:masters\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'egress.yaml'), egressSelectorConfiguration(this.options.egress));
    // The front proxy (requestheader) identity, as kubeadm sets it up: the aggregator proves to
    // aggregated API servers (metrics-server) who the user is.
    const frontProxyCa = await createAuthority('front-proxy-ca');
    const frontProxyClient = await issue(frontProxyCa, { commonName: 'front-proxy-client', usage: 'client' });
    writeFileSync(join(dir, 'front-proxy-ca.crt'), frontProxyCa.cert);
    writeFileSync(join(dir, 'front-proxy-client.crt'), frontProxyClient.cert);
    writeFileSync(join(dir, 'front-proxy-client.key'), frontProxyClient.key, { mode: 0o600 });
    // A serving certificate clients can verify (metrics-server refuses an unverified API server while
    // it verifies kubelets), for every address it is reached by.
    // Client certificates, as kubelets authenticate (CN=system:node:<name>, O=system:nodes).
    this.clientCa = await createAuthority('kubernetes client CA');
    writeFileSync(join(dir, 'client-ca.crt'), this.clientCa.cert);
    const servingCa = await createAuthority('kube-apiserver serving CA');
    const serving = await issue(servingCa, { commonName: 'kube-apiserver', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', ...(this.options.apiserverIps ?? [])], usage: 'server' });
    this.servingCa = servingCa.cert;
    writeFileSync(join(dir, 'apiserver.crt'), serving.cert);
    writeFileSync(join(dir, 'apiserver.key'), serving.key, { mode: 0o600 });
    this.apiserver = await this.processes.start({
      name: 'kube-apiserver',
      command: toolPath('kube-apiserver'),
      args: [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        // All interfaces: cloud workloads in network namespaces of their own (metrics-server) reach it
        // at the host's address on their link, as pods reach the API server.
        '--bind-address=0.0.0.0', '--advertise-address=127.0.0.1', `--secure-port=${securePort}`,
        `--tls-cert-file=${join(dir, 'apiserver.crt')}`, `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
        // One apiserver advertising 127.0.0.1 cannot maintain the kubernetes Service endpoints.
        '--endpoint-reconciler-type=none',
        // The Node authorizer, as kubeadm sets it up: kubelets (and node credentials) get the node rules.
        `--token-auth-file=${join(dir, 'tokens.csv')}`, `--client-ca-file=${join(dir, 'client-ca.crt')}`, '--authorization-mode=Node,RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${join(dir, 'sa.pub')}`, `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        '--service-cluster-ip-range=10.96.0.0/16',
        `--egress-selector-config-file=${join(dir, 'egress.yaml')}`,
        `--requestheader-client-ca-file=${join(dir, 'front-proxy-ca.crt')}`, '--requestheader-allowed-names=front-proxy-client',
        '--requestheader-username-headers=X-Remote-User', '--requestheader-group-headers=X-Remote-Group',
        '--requestheader-extra-headers-prefix=X-Remote-Extra-',
        `--proxy-client-cert-file=${join(dir, 'front-proxy-client.crt')}`, `--proxy-client-key-file=${join(dir, 'front-proxy-client.key')}`,
        // Never the node name: kube-apiserver dials nodes by InternalIP, which only the tunnel reaches.
        '--kubelet-preferred-address-types=InternalIP',
        ...(this.options.kubeletCaFile ? [`--kubelet-certificate-authority=${this.options.kubeletCaFile}`] : []),
        ...(this.options.apiserverArgs ?? []),
      ],
    });
    writeFileSync(this.kubeconfig, this.kubeconfigYaml());
    await waitFor('kube-apiserver ready', async () => {
      const { stdout } = await this.kubectl(['get', '--raw', '/readyz']).catch(() => ({ stdout: '' }));
      return stdout.trim() === 'ok';
    }, { timeoutMs: 60_000, intervalMs: 250 });
    // No controller-manager runs here, so nothing creates the default ServiceAccount pods need.
    await waitFor('default ServiceAccount', async () => {
      await this.kubectl(['create', 'serviceaccount', 'default', '--namespace', 'default']).catch((e: { stderr?: string }) => {
        if (!e.stderr?.includes('AlreadyExists')) throw e;
      });
      return true;
    }, { timeoutMs: 20_000 });
  }

  /**
   * A kubeconfig for a client that reaches the API server at `host` (a namespace's link to this host,
   * one of `apiserverIps`), verifying its certificate.
   */
  kubeconfigFor(host: string, path: string): string {
    const verified = { 'certificate-authority-data': Buffer.from(this.servingCa).toString('base64') };
    writeFileSync(path, this.kubeconfigYaml(this.apiserverUrl.replace('127.0.0.1', host), verified), { mode: 0o600 });
    return path;
  }

  /**
   * A node's own credentials, as its kubelet holds them (/etc/kubernetes/kubelet.conf): a client
   * certificate for system:node:<name> in group system:nodes, verifying the API server's certificate.
   */
  async nodeKubeconfig(node: string, path: string): Promise<string> {
    if (!this.clientCa) throw new Error('the cluster is not started');
    const { cert, key } = await issue(this.clientCa, { commonName: `system:node:${node}`, organization: 'system:nodes', usage: 'client' });
    const user = { 'client-certificate-data': Buffer.from(cert).toString('base64'), 'client-key-data': Buffer.from(key).toString('base64') };
    writeFileSync(path, this.kubeconfigYaml(this.apiserverUrl, { 'certificate-authority-data': Buffer.from(this.servingCa).toString('base64') }, user), { mode: 0o600 });
    return path;
  }

  private kubeconfigYaml(server = this.apiserverUrl, trust: object = { 'insecure-skip-tls-verify': true }, user: object = { token: this.token }): string {
    return stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'edge-tunnel', cluster: { server, ...trust } }],
      users: [{ name: 'admin', user }],
      contexts: [{ name: 'edge-tunnel', context: { cluster: 'edge-tunnel', user: 'admin' } }],
      'current-context': 'edge-tunnel',
    });
  }

  /** Runs the kubectl that goes with this cluster; rejects with stderr on a non-zero exit. */
  kubectl(args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
    const child = run(toolPath('kubectl'), ['--kubeconfig', this.kubeconfig, ...args], {
      timeout: options.timeoutMs ?? 30_000,
      maxBuffer: 256 * 1024 * 1024,
    });
    if (options.input !== undefined) child.child.stdin?.end(options.input);
    return child;
  }

  async apply(manifest: object): Promise<void> {
    await this.kubectl(['apply', '-f', '-'], { input: JSON.stringify(manifest) });
  }

  /** Stops kube-apiserver alone (an outage); etcd and everything else keep running. */
  async stopApiserver(): Promise<void> {
    await this.apiserver?.stop();
  }

  async stop(): Promise<void> {
    await this.processes.stopAll();
  }
}

function egressSelectorConfiguration(egress: EgressProxy): string {
  return stringify({
    apiVersion: 'apiserver.k8s.io/v1beta1',
    kind: 'EgressSelectorConfiguration',
    egressSelections: [
      {
        name: 'cluster',
        connection: {
          proxyProtocol: 'HTTPConnect',
          transport: {
            tcp: {
              url: egress.url,
              tlsConfig: { caBundle: egress.caFile, clientCert: egress.clientCertFile, clientKey: egress.clientKeyFile },
            },
          },
        },
      },
    ],
  });
}
