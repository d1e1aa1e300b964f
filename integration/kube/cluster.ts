// A small real Kubernetes control plane on loopback for the end-to-end tests and `make demo-k8s`:
// etcd and kube-apiserver (built by `make tools`), with kube-apiserver's `cluster` egress going through
// edge-tunnel's CONNECT listener over mutual TLS, and a token kubeconfig for kubectl.

import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { ProcessSet, freePort, waitFor } from '../harness/index.js';

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
}

export class KubeCluster {
  readonly kubeconfig: string;
  readonly processes: ProcessSet;
  private constructor(
    private readonly options: ClusterOptions,
    readonly apiserverUrl: string,
    private readonly token: string,
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
    await this.processes.start({
      name: 'kube-apiserver',
      command: toolPath('kube-apiserver'),
      args: [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${securePort}`,
        `--cert-dir=${join(dir, 'serving')}`,
        // One apiserver advertising 127.0.0.1 cannot maintain the kubernetes Service endpoints.
        '--endpoint-reconciler-type=none',
        `--token-auth-file=${join(dir, 'tokens.csv')}`, '--authorization-mode=RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${join(dir, 'sa.pub')}`, `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        '--service-cluster-ip-range=10.96.0.0/16',
        `--egress-selector-config-file=${join(dir, 'egress.yaml')}`,
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

  private kubeconfigYaml(): string {
    return stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'edge-tunnel', cluster: { server: this.apiserverUrl, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'admin', user: { token: this.token } }],
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
