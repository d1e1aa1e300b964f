import { isIP } from 'node:net';
import { parseCidr } from './cidr.js';

// The plain node data every node source produces and the translator consumes. The nodes file is this
// model's own YAML serialisation; the Kubernetes source projects Node objects onto it.

export type NodeRole = 'edge' | 'cloud';

export interface TunnelNode {
  /** Kubernetes node name (a DNS subdomain); also the node id of its reverse tunnels. */
  readonly name: string;
  /** Every address the cloud may dial the node by (InternalIP, ExternalIP, Hostname). */
  readonly addresses: readonly string[];
  /** The kubelet's port, from status.daemonEndpoints.kubeletEndpoint.Port. */
  readonly kubeletPort: number;
  readonly role: NodeRole;
  readonly labels: Readonly<Record<string, string>>;
  /** The node's pod ranges (spec.podCIDRs): CONNECT to a pod IP in them goes down this node's tunnel. */
  readonly podCIDRs: readonly string[];
  /**
   * When the Node object was created (RFC 3339, metadata.creationTimestamp); absent in a nodes file.
   * Of two nodes claiming one address the older keeps it: every replica and every restart sees the same.
   */
  readonly createdAt?: string;
}

/** A problem with one input item, named by a path such as `nodes[3].name`. */
export interface InputError {
  readonly path: string;
  readonly message: string;
}

export const DEFAULT_KUBELET_PORT = 10250;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Kubernetes' rule for object names such as Node: a DNS subdomain (RFC 1123), at most 253 characters. */
export function dnsSubdomainError(name: string): string | undefined {
  if (name.length === 0) return 'must not be empty';
  if (name.length > 253) return `is ${name.length} characters long, more than 253`;
  const bad = name.split('.').find((label) => label.length > 63 || !DNS_LABEL.test(label));
  if (bad !== undefined) {
    return 'must be a DNS subdomain: lowercase letters, digits, "-" and ".", starting and ending with a letter or digit';
  }
  return undefined;
}

export function isValidPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

/**
 * Checks one node on its own and drops what is wrong with it, field by field: a bad address, pod CIDR
 * or kubelet port costs that field (the port falls back to the default), not the node and its tunnels.
 * Only a node that cannot be named or placed (bad name, bad role) is skipped whole (`node` undefined).
 */
export function cleanNode(node: TunnelNode, path: string): { node: TunnelNode | undefined; errors: InputError[] } {
  const errors: InputError[] = [];
  const nameError = dnsSubdomainError(node.name);
  if (nameError) errors.push({ path: `${path}.name`, message: `"${node.name}" ${nameError}` });
  if (node.role !== 'edge' && node.role !== 'cloud') {
    errors.push({ path: `${path}.role`, message: `must be "edge" or "cloud", not "${String(node.role)}"` });
  }
  if (errors.length > 0) return { node: undefined, errors };
  let kubeletPort = node.kubeletPort;
  if (!isValidPort(kubeletPort)) {
    errors.push({ path: `${path}.kubeletPort`, message: `${kubeletPort} is not a TCP port (1-65535): using ${DEFAULT_KUBELET_PORT}` });
    kubeletPort = DEFAULT_KUBELET_PORT;
  }
  const addresses = node.addresses.filter((address, i) => {
    const ok = isIP(address) !== 0 || dnsSubdomainError(address.toLowerCase()) === undefined;
    if (!ok) errors.push({ path: `${path}.addresses[${i}]`, message: `"${address}" is not an IP address or host name: dropped` });
    return ok;
  });
  const podCIDRs = node.podCIDRs.filter((cidr, i) => {
    const ok = parseCidr(cidr) !== undefined;
    if (!ok) errors.push({ path: `${path}.podCIDRs[${i}]`, message: `"${cidr}" is not a CIDR such as 10.244.1.0/24: dropped` });
    return ok;
  });
  if (errors.length === 0) return { node, errors };
  return { node: { ...node, kubeletPort, addresses, podCIDRs }, errors };
}

/**
 * The host names a node is routed by: its name and every address, lowercased (authorities match without
 * case) and without repeats (a Kubernetes Hostname address usually equals the node name).
 */
export function routingHosts(node: TunnelNode): string[] {
  return [...new Set([node.name, ...node.addresses].map((host) => host.toLowerCase()))];
}

export function formatInputError(error: InputError): string {
  return `${error.path}: ${error.message}`;
}
