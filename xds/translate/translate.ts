// The translator: nodes and settings in, each proxy's Envoy resources out. Pure: no I/O, no clock, no
// state, so the same input always gives byte-identical resources (and content-hash versions).

import type { Any } from '../../envoy/generated/google/protobuf/any.js';
import { XdsType, type XdsTypeUrl } from '../../envoy/xds-types.js';
import type { InputError, TunnelNode } from '../model/node.js';
import { admitNodes, type Admission } from './admission.js';
import { allowedPortsOf, validateSettings, type Settings, type TlsSettings } from '../model/settings.js';
import { SECRETS, certificateSecret, edgeTlsDir, trustSecret } from './tls.js';
import { VHDS_PLACEHOLDER, connectListener, connectRoutes, handshakeListener, nodeVirtualHostBytes, tunnelCluster, vhdsName, vhdsPlaceholder } from './cloud.js';
import { typeUrlOf } from '../../envoy/registry.js';
import { nodeVirtualHost } from './names.js';
import type { TranslationMemo } from './memo.js';
import { directCluster } from './direct.js';
import { cloudCluster, hasPodRoutes, localPortClusterOf, podCluster, localRoutes, terminatorCluster, tunnelListener } from './edge.js';
import { CLOUD, EDGE, SIDECAR, localPortCluster } from './names.js';
import { captureListener, connectCluster, sidecarSecrets } from './sidecar.js';

/** Resources of one proxy (or of every cloud proxy): type URL → resource name → packed resource. */
export type ResourceSet = ReadonlyMap<XdsTypeUrl, ReadonlyMap<string, Any>>;

export interface Translation {
  readonly ok: true;
  /** Served to every cloud Envoy. */
  readonly cloud: ResourceSet;
  /** Served to every sidecar. */
  readonly sidecar: ResourceSet;
  /** Served to each edge Envoy, by node name: per-node resources, so one node's change touches one entry. */
  readonly edges: ReadonlyMap<string, ResourceSet>;
  /** Nodes skipped and why; the others are translated. */
  readonly errors: readonly InputError[];
  /** Who owns what, as routed (for `xds route`). */
  readonly admission: Admission;
}

/** Settings that cannot be served: nothing is translated. */
export interface FailedTranslation {
  readonly ok: false;
  readonly errors: readonly InputError[];
}

type Entry = readonly [XdsTypeUrl, string, Any];

function resourceSet(entries: readonly Entry[]): ResourceSet {
  const set = new Map<XdsTypeUrl, Map<string, Any>>();
  for (const [type, name, any] of entries) {
    let byName = set.get(type);
    if (!byName) set.set(type, (byName = new Map()));
    byName.set(name, any);
  }
  return set;
}

function cloudSecrets(tls: TlsSettings): Entry[] {
  return [
    [XdsType.secret, SECRETS.cloudIdentity, certificateSecret(SECRETS.cloudIdentity, tls.cloudDir)],
    [XdsType.secret, SECRETS.edgeNodeCa, trustSecret(SECRETS.edgeNodeCa, tls.cloudDir, 'ca.crt')],
    [XdsType.secret, SECRETS.connectClientCa, trustSecret(SECRETS.connectClientCa, tls.cloudDir, 'client-ca.crt')],
  ];
}

function sidecarResources(settings: Settings): ResourceSet {
  return resourceSet([
    ...(settings.tls ? sidecarSecrets(settings).map(([name, any]): Entry => [XdsType.secret, name, any]) : []),
    [XdsType.cluster, SIDECAR.connectCluster, connectCluster(settings)],
    [XdsType.listener, SIDECAR.captureListener, captureListener(settings)],
  ]);
}

function edgeSecrets(tls: TlsSettings, node: string): Entry[] {
  const dir = edgeTlsDir(tls, node);
  return [
    [XdsType.secret, SECRETS.edgeIdentity, certificateSecret(SECRETS.edgeIdentity, dir)],
    [XdsType.secret, SECRETS.cloudCa, trustSecret(SECRETS.cloudCa, dir, 'ca.crt')],
  ];
}

function cloudResources(admission: Admission, settings: Settings, memo: TranslationMemo | undefined): ResourceSet {
  const nodeHost = (node: TunnelNode): Uint8Array => (memo ? memo.virtualHost(node, () => nodeVirtualHostBytes(node, settings)) : nodeVirtualHostBytes(node, settings));
  return resourceSet([
    ...(settings.tls ? cloudSecrets(settings.tls) : []),
    [XdsType.cluster, CLOUD.tunnelCluster, tunnelCluster()],
    ...(settings.cloudDestinations === 'direct' ? [[XdsType.cluster, CLOUD.directCluster, directCluster()] as Entry] : []),
    [XdsType.listener, CLOUD.handshakeListener, handshakeListener(settings)],
    [XdsType.listener, CLOUD.connectListener, connectListener(settings)],
    [XdsType.route, CLOUD.connectRoutes, connectRoutes(admission, settings, nodeHost)],
    ...(settings.cloudRoutes === 'vhds' ? vhdsEntries(admission, nodeHost) : []),
  ]);
}

/** VHDS: each edge node's virtual host as a resource of its own (one placeholder for a fleet without edges). */
function vhdsEntries(admission: Admission, nodeHost: (node: TunnelNode) => Uint8Array): Entry[] {
  const virtualHost = (value: Uint8Array): Any => ({ typeUrl: typeUrlOf('envoy.config.route.v3.VirtualHost'), value: Buffer.from(value) });
  if (admission.edgeNodes.length === 0) return [[XdsType.virtualHost, VHDS_PLACEHOLDER, virtualHost(vhdsPlaceholder())]];
  return admission.edgeNodes.map((node): Entry => [XdsType.virtualHost, vhdsName(nodeVirtualHost(node.name)), virtualHost(nodeHost(node))]);
}

/** The clusters that reach local targets: the connect-terminator, or Envoy's own per-port and pod clusters. */
function localTargetClusters(node: TunnelNode, settings: Settings): Entry[] {
  if (settings.edgeConnectTermination === 'terminator') {
    return [[XdsType.cluster, EDGE.terminatorCluster, terminatorCluster(node.name, settings)]];
  }
  const ports = allowedPortsOf(node.kubeletPort, settings);
  return [
    ...ports.map((port): Entry => [XdsType.cluster, localPortCluster(port), localPortClusterOf(port, settings)]),
    ...(hasPodRoutes(node, settings) ? [[XdsType.cluster, EDGE.podCluster, podCluster()] as Entry] : []),
  ];
}

function edgeResources(node: TunnelNode, settings: Settings): ResourceSet {
  return resourceSet([
    ...(settings.tls ? edgeSecrets(settings.tls, node.name) : []),
    [XdsType.cluster, EDGE.cloudCluster, cloudCluster(settings)],
    ...localTargetClusters(node, settings),
    [XdsType.listener, EDGE.tunnelListener, tunnelListener(node, settings)],
    [XdsType.route, EDGE.localRoutes, localRoutes(node, settings)],
  ]);
}

/**
 * `serviceCIDRs` are the ranges the cluster reports (ServiceCIDR objects), added to settings.serviceCIDRs.
 * Nodes are admitted first (translate/admission.ts): what a node may not hold is left out and reported.
 * With a `memo` (memo.ts), what an earlier translation built for an unchanged node is reused: the
 * result is the same, one node's change costs one node's work.
 */
export function translate(nodes: readonly TunnelNode[], settings: Settings, serviceCIDRs: readonly string[] = [], memo?: TranslationMemo): Translation | FailedTranslation {
  const settingsErrors = validateSettings(settings).map((e) => ({ ...e, path: `settings.${e.path}` }));
  if (settingsErrors.length > 0) return { ok: false, errors: settingsErrors };
  memo?.begin(settings);
  const admission = admitNodes(nodes, [...new Set([...settings.serviceCIDRs, ...serviceCIDRs])], settings);
  const edge = (node: TunnelNode): ResourceSet => (memo ? memo.edge(node, () => edgeResources(node, settings)) : edgeResources(node, settings));
  const translation: Translation = {
    ok: true,
    cloud: cloudResources(admission, settings, memo),
    sidecar: sidecarResources(settings),
    edges: new Map(admission.edgeNodes.map((node) => [node.name, edge(node)])),
    errors: admission.errors,
    admission,
  };
  memo?.end();
  return translation;
}
