// kwok as a real kubelet API for one edge node: logs from a CRI-format file, exec running commands on
// this host, port-forward to a local target, and kubelet-like metrics: the resource metrics
// metrics-server reads (at the path the Node's metrics.k8s.io/resource-metrics-path annotation names,
// usage from RESOURCE_USAGE) and a small /metrics for Prometheus. Its server listens on loopback only, so kube-apiserver can
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

/** What every pod on a kwok node uses, in the resource metrics (kubectl top). */
export const RESOURCE_USAGE = { cpu: '250m', memory: '64Mi' } as const;

/** The path of a node's resource metrics on its kwok kubelet, as metrics-server must be told by annotation. */
export function resourceMetricsPath(node: string): string {
  return `/metrics/nodes/${node}/metrics/resource`;
}

const gauge = (name: string, dimension: string, value: string, labels: { name: string; value: string }[] = []) => ({ name, dimension, kind: 'gauge', help: name, value, labels });
const counter = (name: string, dimension: string, value: string, labels: { name: string; value: string }[] = []) => ({ name, dimension, kind: 'counter', help: name, value, labels });
const podLabels = [{ name: 'namespace', value: 'pod.metadata.namespace' }, { name: 'pod', value: 'pod.metadata.name' }];
const containerLabels = [{ name: 'container', value: 'container.name' }, ...podLabels];

/** The kubelet's resource metrics (the metric names metrics-server reads), from kwok's usage model. */
function resourceMetrics(): object {
  return {
    path: '/metrics/nodes/{nodeName}/metrics/resource',
    metrics: [
      gauge('scrape_error', 'node', '0'),
      gauge('container_start_time_seconds', 'container', 'pod.SinceSecond()', containerLabels),
      counter('container_cpu_usage_seconds_total', 'container', 'pod.CumulativeUsage("cpu", container.name)', containerLabels),
      gauge('container_memory_working_set_bytes', 'container', 'pod.Usage("memory", container.name)', containerLabels),
      counter('pod_cpu_usage_seconds_total', 'pod', 'pod.CumulativeUsage("cpu")', podLabels),
      gauge('pod_memory_working_set_bytes', 'pod', 'pod.Usage("memory")', podLabels),
      counter('node_cpu_usage_seconds_total', 'node', 'node.CumulativeUsage("cpu")'),
      gauge('node_memory_working_set_bytes', 'node', 'node.Usage("memory")'),
    ],
  };
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
    {
      apiVersion: 'kwok.x-k8s.io/v1alpha1',
      kind: 'ClusterResourceUsage',
      metadata: { name: 'usage' },
      spec: { usages: [{ usage: { cpu: { value: RESOURCE_USAGE.cpu }, memory: { value: RESOURCE_USAGE.memory } } }] },
    },
    { apiVersion: 'kwok.x-k8s.io/v1alpha1', kind: 'Metric', metadata: { name: 'resource' }, spec: resourceMetrics() },
    // The kubelet's own /metrics, for Prometheus: one series naming the node.
    {
      apiVersion: 'kwok.x-k8s.io/v1alpha1',
      kind: 'Metric',
      metadata: { name: 'kubelet' },
      spec: { path: '/metrics', metrics: [gauge('kubelet_node_name', 'node', '1', [{ name: 'node', value: 'node.metadata.name' }])] },
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
