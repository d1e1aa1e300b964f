// The cluster's credentials for the `xds` commands: a kubeconfig file when one is named, else the pod's
// ServiceAccount (`xds serve --in-cluster`) or kubectl's usual lookup ($KUBECONFIG, ~/.kube/config,
// in-cluster) for the audit commands. Read once per process: `xds serve` has several consumers.

import { KubeConfig } from '@kubernetes/client-node';

const loaded = new Map<string, KubeConfig>();

export function loadKubeConfig(path: string | undefined, otherwise: 'in-cluster' | 'default'): KubeConfig {
  const key = path ?? `(${otherwise})`;
  let kubeConfig = loaded.get(key);
  if (!kubeConfig) {
    kubeConfig = new KubeConfig();
    if (path !== undefined) kubeConfig.loadFromFile(path);
    else if (otherwise === 'in-cluster') kubeConfig.loadFromCluster();
    else kubeConfig.loadFromDefault();
    loaded.set(key, kubeConfig);
  }
  return kubeConfig;
}
