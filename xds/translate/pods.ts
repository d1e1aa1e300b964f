// Routes for pod IPs: kube-apiserver's pod and service proxy sends `CONNECT <pod IP>:<port>`, so a pod
// IP inside an edge node's pod CIDR goes down that node's tunnel, for the allowlisted pod ports only.
// Envoy matches virtual hosts by string, not by CIDR: each range is covered by an octet-aligned
// wildcard domain ("10.244.1.*") and each node's route checks the exact range and port by regex.

import type { DeepPartial } from '../../envoy/generated/envoy/config/core/v3/base.js';
import type { Route, RouteMatch, VirtualHost } from '../../envoy/generated/envoy/config/route/v3/route_components.js';
import { parseCidr, type Cidr, type TunnelNode } from '../model/node.js';
import { tunnelRoute } from './tunnel-route.js';

function octetsOf(value: number): number[] {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256);
}

/** The wildcard domain covering an IPv4 range: its whole leading octets (three at most), then "*". */
export function wildcardDomain(cidr: Cidr): string {
  const whole = Math.min(Math.floor(cidr.prefix / 8), 3);
  return [...octetsOf(cidr.base).slice(0, whole), '*'].join('.');
}

/** A compact regex for the decimal numbers lo..hi of one digit count (digits as fixed-width strings). */
function sameWidthRange(lo: string, hi: string): string {
  if (lo === hi) return lo;
  if (lo.length === 1) return `[${lo}-${hi}]`;
  const [a, restA] = [lo[0], lo.slice(1)];
  const [b, restB] = [hi[0], hi.slice(1)];
  if (a === b) return `${a}${group(sameWidthRange(restA, restB))}`;
  const width = restA.length;
  const parts = [`${a}${group(sameWidthRange(restA, '9'.repeat(width)))}`];
  const low = Number(a) + 1;
  const high = Number(b) - 1;
  if (low <= high) parts.push(`${low === high ? low : `[${low}-${high}]`}\\d${width > 1 ? `{${width}}` : ''}`);
  parts.push(`${b}${group(sameWidthRange('0'.repeat(width), restB))}`);
  return parts.join('|');
}

function group(pattern: string): string {
  return pattern.includes('|') ? `(${pattern})` : pattern;
}

/** A regex (without anchors) for the decimal numbers lo..hi, 0 <= lo <= hi <= 255, no leading zeros. */
export function numberRangeRegex(lo: number, hi: number): string {
  const parts: string[] = [];
  for (const [from, to] of [[0, 9], [10, 99], [100, 999]] as const) {
    const a = Math.max(lo, from);
    const b = Math.min(hi, to);
    if (a <= b) parts.push(sameWidthRange(String(a), String(b)));
  }
  return group(parts.join('|'));
}

/** A regex matching exactly the IPv4 addresses of a range. */
export function cidrRegex(cidr: Cidr): string {
  return octetsOf(cidr.base)
    .map((octet, i) => {
      const fixedBits = Math.min(Math.max(cidr.prefix - 8 * i, 0), 8);
      if (fixedBits === 8) return String(octet);
      if (fixedBits === 0) return numberRangeRegex(0, 255);
      return numberRangeRegex(octet, octet + 2 ** (8 - fixedBits) - 1);
    })
    .join('\\.');
}

/** A CONNECT match for exactly the addresses of `cidr` with one of `ports`. */
export function podMatch(cidr: Cidr, ports: readonly number[]): DeepPartial<RouteMatch> {
  const portPattern = `(${[...ports].sort((a, b) => a - b).join('|')})`;
  return {
    connectMatcher: {},
    headers: [{ name: ':authority', stringMatch: { safeRegex: { regex: `^${cidrRegex(cidr)}:${portPattern}$` } } }],
  };
}

/**
 * Groups the routable (IPv4, /8 or longer) pod ranges of nodes by wildcard domain, one virtual host
 * per domain, each range's route built by `routeOf`. IPv6 pod ranges are not routed.
 */
export function podVirtualHosts(
  nodes: readonly TunnelNode[],
  podPorts: readonly number[],
  routeOf: (node: TunnelNode, match: DeepPartial<RouteMatch>) => DeepPartial<Route>,
): DeepPartial<VirtualHost>[] {
  if (podPorts.length === 0) return [];
  const byDomain = new Map<string, DeepPartial<Route>[]>();
  for (const node of nodes) {
    for (const text of node.podCIDRs) {
      const cidr = parseCidr(text);
      if (cidr?.family !== 4 || cidr.prefix < 8) continue;
      const domain = wildcardDomain(cidr);
      byDomain.set(domain, [...(byDomain.get(domain) ?? []), routeOf(node, podMatch(cidr, podPorts))]);
    }
  }
  return [...byDomain.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([domain, routes]) => ({ name: `pods_${domain}`, domains: [domain], routes }));
}

/** Cloud side: a pod IP of an edge node goes down that node's tunnels. */
export function cloudPodVirtualHosts(edgeNodes: readonly TunnelNode[], podPorts: readonly number[]): DeepPartial<VirtualHost>[] {
  return podVirtualHosts(edgeNodes, podPorts, (node, match) => tunnelRoute(node.name, match));
}
