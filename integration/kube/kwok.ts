// kwok as a real kubelet API for one edge node: logs from a CRI-format file, exec running commands on
// this host, port-forward to a local target. Its server listens on loopback only, so kube-apiserver can
// reach it through the node's tunnel alone (by the node's TEST-NET InternalIP).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ProcessHandle, ProcessSet } from '../harness/index.js';
import { toolPath } from './cluster.js';

export interface KwokOptions {
  readonly node: string;
  readonly nodeIp: string;
  /** The kubelet port: kwok's server port, published as the Node's daemonEndpoints port. */
  readonly port: number;
  readonly kubeconfig: string;
  readonly dir: string;
  /** Serving certificate (IP SAN = the node's addresses) and key files. */
  readonly certFile: string;
  readonly keyFile: string;
  /** CRI-format container log file served for every container on the node. */
  readonly logsFile: string;
  /** Where `kubectl port-forward` to any pod port on the node ends up. */
  readonly portForwardTarget: { readonly address: string; readonly port: number };
}

function behaviour(options: KwokOptions): string {
  const selector = {};
  return [
    { apiVersion: 'kwok.x-k8s.io/v1alpha1', kind: 'ClusterLogs', metadata: { name: 'logs' }, spec: { selector, logs: [{ logsFile: options.logsFile, follow: true }] } },
    { apiVersion: 'kwok.x-k8s.io/v1alpha1', kind: 'ClusterExec', metadata: { name: 'exec' }, spec: { selector, execs: [{ local: { workDir: options.dir } }] } },
    {
      apiVersion: 'kwok.x-k8s.io/v1alpha1',
      kind: 'ClusterPortForward',
      metadata: { name: 'port-forward' },
      spec: { selector, forwards: [{ target: options.portForwardTarget }] },
    },
  ]
    .map((doc) => stringify(doc))
    .join('---\n');
}

export async function startKwok(processes: ProcessSet, options: KwokOptions): Promise<ProcessHandle> {
  const config = join(options.dir, `kwok-${options.node}.yaml`);
  writeFileSync(config, behaviour(options));
  return processes.start({
    name: `kwok-${options.node}`,
    command: toolPath('kwok'),
    args: [
      '--kubeconfig', options.kubeconfig,
      '--manage-single-node', options.node,
      '--node-ip', options.nodeIp,
      '--node-port', String(options.port),
      '--server-address', `127.0.0.1:${options.port}`,
      '--tls-cert-file', options.certFile,
      '--tls-private-key-file', options.keyFile,
      '-c', config,
    ],
  });
}
