import { isIP } from 'node:net';

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
 * Checks one node on its own: name, role, port and addresses. Cross-node rules (duplicate names, an
 * address claimed twice) are checked by `validateNodes`.
 */
export function validateNode(node: TunnelNode, path: string): InputError[] {
  const errors: InputError[] = [];
  const nameError = dnsSubdomainError(node.name);
  if (nameError) errors.push({ path: `${path}.name`, message: `"${node.name}" ${nameError}` });
  if (node.role !== 'edge' && node.role !== 'cloud') {
    errors.push({ path: `${path}.role`, message: `must be "edge" or "cloud", not "${String(node.role)}"` });
  }
  if (!isValidPort(node.kubeletPort)) {
    errors.push({ path: `${path}.kubeletPort`, message: `${node.kubeletPort} is not a TCP port (1-65535)` });
  }
  node.addresses.forEach((address, i) => {
    if (isIP(address) === 0 && dnsSubdomainError(address.toLowerCase()) !== undefined) {
      errors.push({ path: `${path}.addresses[${i}]`, message: `"${address}" is not an IP address or host name` });
    }
  });
  node.podCIDRs.forEach((cidr, i) => {
    if (parseCidr(cidr) === undefined) errors.push({ path: `${path}.podCIDRs[${i}]`, message: `"${cidr}" is not a CIDR such as 10.244.1.0/24` });
  });
  return errors;
}

export interface Cidr {
  readonly family: 4 | 6;
  /** IPv4 only: the first address as a number, and the prefix length. */
  readonly base: number;
  readonly prefix: number;
}

/** Parses an IPv4 or IPv6 CIDR; IPv6 ranges are recognised but carry no numeric base. */
export function parseCidr(cidr: string): Cidr | undefined {
  const [ip, bits, ...rest] = cidr.split('/');
  const prefix = Number(bits);
  if (rest.length > 0 || bits === undefined || !/^\d+$/.test(bits)) return undefined;
  const family = isIP(ip);
  if (family === 6) return prefix <= 128 ? { family, base: 0, prefix } : undefined;
  if (family !== 4 || prefix > 32) return undefined;
  const value = ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
  const size = 2 ** (32 - prefix);
  return { family, base: value - (value % size), prefix };
}

function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== 4 || b.family !== 4) return false;
  const aEnd = a.base + 2 ** (32 - a.prefix);
  const bEnd = b.base + 2 ** (32 - b.prefix);
  return a.base < bEnd && b.base < aEnd;
}

/**
 * The host names a node is routed by: its name and every address, lowercased (authorities match without
 * case) and without repeats (a Kubernetes Hostname address usually equals the node name).
 */
export function routingHosts(node: TunnelNode): string[] {
  return [...new Set([node.name, ...node.addresses].map((host) => host.toLowerCase()))];
}

/**
 * Validates a node list and returns the nodes that can be served plus the reasons for each change.
 * A node with an error of its own, or whose name an earlier node has, is skipped whole. An address
 * that is another node's name, or that several nodes list, is routed to none of them: every kubelet
 * writes its own Node's addresses, so letting one claimant win would let any node take another's
 * traffic (or knock it out) by listing its address. The nodes keep their other addresses. Of two
 * nodes with overlapping pod CIDRs the later one is skipped.
 */
export function validateNodes(
  nodes: readonly TunnelNode[],
  pathOf: (index: number) => string = (i) => `nodes[${i}]`,
): { nodes: TunnelNode[]; errors: InputError[] } {
  const errors: InputError[] = [];
  const named = new Map<string, string>();
  const ranges: { cidr: Cidr; text: string; owner: string }[] = [];
  const candidates: { node: TunnelNode; path: string }[] = [];
  nodes.forEach((node, i) => {
    const path = pathOf(i);
    const own = validateNode(node, path);
    const nameOwner = named.get(node.name.toLowerCase());
    if (nameOwner !== undefined) own.push({ path: `${path}.name`, message: `"${node.name}" is already defined by ${nameOwner}` });
    node.podCIDRs.forEach((text, j) => {
      const cidr = parseCidr(text);
      const clash = cidr && ranges.find((r) => cidrsOverlap(r.cidr, cidr));
      if (clash) own.push({ path: `${path}.podCIDRs[${j}]`, message: `"${text}" overlaps ${clash.text} of ${clash.owner}` });
    });
    if (own.length > 0) {
      errors.push(...own);
      return;
    }
    named.set(node.name.toLowerCase(), `${path} (${node.name})`);
    for (const text of node.podCIDRs) {
      const cidr = parseCidr(text);
      if (cidr) ranges.push({ cidr, text, owner: `${path} (${node.name})` });
    }
    candidates.push({ node, path });
  });
  // Who lists each address (a node listing its own name, as a Hostname address does, is no claim).
  const claimants = new Map<string, string[]>();
  for (const { node, path } of candidates) {
    for (const host of new Set(node.addresses.map((a) => a.toLowerCase()))) {
      if (host === node.name) continue;
      claimants.set(host, [...(claimants.get(host) ?? []), `${path} (${node.name})`]);
    }
  }
  const contested = (host: string): string | undefined => {
    const others = named.get(host);
    const listed = claimants.get(host) ?? [];
    if (others !== undefined) return `is the name of ${others}`;
    return listed.length > 1 ? `is listed by ${listed.join(' and ')}` : undefined;
  };
  const accepted = candidates.map(({ node, path }) => {
    const addresses = node.addresses.filter((address, j) => {
      const host = address.toLowerCase();
      const why = host === node.name ? undefined : contested(host);
      if (why) errors.push({ path: `${path}.addresses[${j}]`, message: `"${address}" ${why}: routed to no node` });
      return why === undefined;
    });
    return addresses.length === node.addresses.length ? node : { ...node, addresses };
  });
  return { nodes: accepted, errors };
}

export function formatInputError(error: InputError): string {
  return `${error.path}: ${error.message}`;
}
