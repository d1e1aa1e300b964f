// Who owns what: decides, from untrusted node data, which addresses and pod ranges each node is routed
// by. Every kubelet writes its own Node's status (addresses, kubelet port), so a compromised edge can
// claim anything there; this policy makes sure no edge can take or knock out what another node, a
// Service or a cloud pod owns. Pure, so every replica and every restart decides alike.
//
// The rules, in order:
//   1. A node with a bad name or role is skipped; any other bad field is dropped alone (cleanNode). A
//      kubelet port outside settings.kubeletPorts is replaced by the first of them.
//   2. Nodes are ranked: cloud nodes before edges (the cloud is the operator's own), then the older
//      Node (creationTimestamp) before the newer, then by name. Of two nodes with one name the later
//      is skipped.
//   3. Pod CIDRs in rank order: a range overlapping one already held is dropped; an edge's range that
//      overlaps a Service CIDR is dropped too.
//   4. Addresses in rank order: a node's own name is always its own; another node's name, an address
//      held by a node ranked before, and (for edges) an address inside a Service CIDR or another node's
//      pod CIDR are refused for that node. The first claimant keeps what it holds.

import { cidrContains, cidrsOverlap, hostCidr, parseCidr, type Cidr } from '../model/cidr.js';
import { cleanNode, dnsSubdomainError, type InputError, type TunnelNode } from '../model/node.js';
import type { Settings } from '../model/settings.js';

/** A range of the cluster that is not an edge's: the cloud Envoy dials addresses in it directly. */
export interface CloudRange {
  readonly cidr: Cidr;
  /** What it is, for messages: "Service CIDR", "pods of cloud node cp-1", "cloud node cp-1". */
  readonly owner: string;
}

export interface Admission {
  /** Nodes as they will be routed, sorted by name; each keeps only what it owns. */
  readonly edgeNodes: readonly TunnelNode[];
  readonly cloudNodes: readonly TunnelNode[];
  /** Service CIDRs, cloud nodes' pod CIDRs and cloud nodes' IPv4 addresses. */
  readonly cloudRanges: readonly CloudRange[];
  /** Every node or field left out, and why. */
  readonly errors: readonly InputError[];
}

const byName = (a: TunnelNode, b: TunnelNode): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function rank(a: TunnelNode, b: TunnelNode): number {
  if (a.role !== b.role) return a.role === 'cloud' ? -1 : 1;
  const [x, y] = [a.createdAt ?? '', b.createdAt ?? ''];
  // RFC 3339 timestamps in UTC ("2026-12-01T17:48:53Z") order as strings.
  if (x !== y) return x < y ? -1 : 1;
  return byName(a, b);
}

interface HeldRange {
  readonly cidr: Cidr;
  readonly node: string;
}

export function admitNodes(nodes: readonly TunnelNode[], serviceCIDRs: readonly string[], settings: Settings): Admission {
  const errors: InputError[] = [];
  const refuse = (path: string, message: string): void => {
    errors.push({ path, message });
  };

  // 1 and 2: clean each node, rank them, skip repeated names.
  const cleaned: TunnelNode[] = [];
  nodes.forEach((raw, i) => {
    // Named by the node where the name is usable: a node's place in the list means nothing to a reader.
    const path = typeof raw.name === 'string' && dnsSubdomainError(raw.name) === undefined ? raw.name : `nodes[${i}]`;
    const { node, errors: own } = cleanNode(raw, path);
    errors.push(...own);
    if (node === undefined) return;
    if (settings.kubeletPorts === 'any' || settings.kubeletPorts.includes(node.kubeletPort)) return void cleaned.push(node);
    const fallback = settings.kubeletPorts[0];
    refuse(`${path}.kubeletPort`, `${node.kubeletPort} is not one of the allowed kubelet ports (${settings.kubeletPorts.join(', ')}): using ${fallback}`);
    cleaned.push({ ...node, kubeletPort: fallback });
  });
  cleaned.sort(rank);
  const names = new Map<string, TunnelNode>();
  const ranked = cleaned.filter((node) => {
    const holder = names.get(node.name.toLowerCase());
    if (holder !== undefined) {
      refuse(`${node.name}.name`, `"${node.name}" is already the name of another ${holder.role} node: skipped`);
      return false;
    }
    names.set(node.name.toLowerCase(), node);
    return true;
  });

  const services = serviceCIDRs.flatMap((text) => parseCidr(text) ?? []);
  const serviceClash = (cidr: Cidr): Cidr | undefined => services.find((s) => cidrsOverlap(s, cidr));

  // 3: pod CIDRs, first holder wins.
  const podRanges: HeldRange[] = [];
  const withPods = ranked.map((node) => {
    const podCIDRs = node.podCIDRs.filter((text, j) => {
      const cidr = parseCidr(text);
      if (cidr === undefined || cidr.family !== 4) return true;
      const held = podRanges.find((r) => cidrsOverlap(r.cidr, cidr));
      const service = node.role === 'edge' ? serviceClash(cidr) : undefined;
      const why = held ? `overlaps ${held.cidr.text}, the pod CIDR of ${held.node}` : service ? `overlaps the Service CIDR ${service.text}` : undefined;
      if (why) refuse(`${node.name}.podCIDRs[${j}]`, `"${text}" ${why}: dropped`);
      else podRanges.push({ cidr, node: node.name });
      return why === undefined;
    });
    return podCIDRs.length === node.podCIDRs.length ? node : { ...node, podCIDRs };
  });

  // 4: addresses, first claimant wins.
  const holders = new Map<string, string>();
  const admitted = withPods.map((node) => {
    const addresses = node.addresses.filter((address, j) => {
      const host = address.toLowerCase();
      // Its own name, or an address it lists twice (routingHosts folds repeats).
      if (host === node.name.toLowerCase() || holders.get(host) === node.name) return true;
      const why = addressConflict(node, host, names, holders, services, podRanges);
      if (why) refuse(`${node.name}.addresses[${j}]`, `"${address}" ${why}: not routed to ${node.name}`);
      else holders.set(host, node.name);
      return why === undefined;
    });
    return addresses.length === node.addresses.length ? node : { ...node, addresses };
  });

  const edgeNodes = admitted.filter((n) => n.role === 'edge').sort(byName);
  const cloudNodes = admitted.filter((n) => n.role === 'cloud').sort(byName);
  const cloudRanges: CloudRange[] = [
    ...services.map((cidr) => ({ cidr, owner: 'Service CIDR' })),
    ...cloudNodes.flatMap((node) => node.podCIDRs.flatMap((text) => parseCidr(text) ?? []).map((cidr) => ({ cidr, owner: `pods of cloud node ${node.name}` }))),
    ...cloudNodes.flatMap((node) => node.addresses.flatMap((a) => hostCidr(a) ?? []).map((cidr) => ({ cidr, owner: `cloud node ${node.name}` }))),
  ];
  return { edgeNodes, cloudNodes, cloudRanges, errors };
}

/** Why `node` may not hold `host` (lowercased), or undefined if it may. */
function addressConflict(
  node: TunnelNode,
  host: string,
  names: ReadonlyMap<string, TunnelNode>,
  holders: ReadonlyMap<string, string>,
  services: readonly Cidr[],
  podRanges: readonly HeldRange[],
): string | undefined {
  const named = names.get(host);
  if (named !== undefined) return `is the name of ${named.role} node ${named.name}`;
  const holder = holders.get(host);
  if (holder !== undefined) return `is already held by ${holder}, which claimed it first`;
  if (node.role !== 'edge') return undefined;
  const service = services.find((cidr) => cidrContains(cidr, host));
  if (service) return `is inside the Service CIDR ${service.text}`;
  const pods = podRanges.find((r) => r.node !== node.name && cidrContains(r.cidr, host));
  return pods ? `is inside ${pods.cidr.text}, the pod CIDR of ${pods.node}` : undefined;
}
