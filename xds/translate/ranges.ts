// Routes for address ranges. kube-apiserver's pod and service proxy, its webhooks and aggregated APIs
// send `CONNECT <IP>:<port>`: an IP in an edge node's pod CIDR goes down that node's tunnel (allowlisted
// pod ports only), an IP in a cloud range (Service CIDR, cloud pods, cloud nodes) is dialed directly.
// Envoy matches virtual hosts by string, not by CIDR: each range is covered by an octet-aligned
// wildcard domain ("10.244.1.*") and each range's route checks the exact range and port by regex.

import type { DeepPartial } from '../../envoy/generated/envoy/config/core/v3/base.js';
import type { Route, RouteMatch, VirtualHost } from '../../envoy/generated/envoy/config/route/v3/route_components.js';
import { cidrsOverlap, parseCidr, type Cidr } from '../model/cidr.js';
import type { TunnelNode } from '../model/node.js';

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

/** A CONNECT match for exactly the addresses of `cidr` with one of `ports` (any port: 'any'). */
export function rangeMatch(cidr: Cidr, ports: readonly number[] | 'any'): DeepPartial<RouteMatch> {
  const portPattern = ports === 'any' ? '[0-9]{1,5}' : `(${[...ports].sort((a, b) => a - b).join('|')})`;
  return {
    connectMatcher: {},
    headers: [{ name: ':authority', stringMatch: { safeRegex: { regex: `^${cidrRegex(cidr)}:${portPattern}$` } } }],
  };
}

/** An address range and what CONNECT to it does. */
export interface RoutedRange {
  readonly cidr: Cidr;
  readonly ports: readonly number[] | 'any';
  readonly route: (match: DeepPartial<RouteMatch>) => DeepPartial<Route>;
}

/** The block of addresses a wildcard domain covers: the range cut to whole octets (at most three). */
function domainBlock(cidr: Cidr): Cidr {
  const prefix = Math.min(Math.floor(cidr.prefix / 8), 3) * 8;
  return parseCidr(`${octetsOf(cidr.base).join('.')}/${prefix}`) ?? cidr;
}

/**
 * Virtual hosts for address ranges: one per octet-aligned wildcard domain, since Envoy matches domains
 * by string. Envoy picks the longest matching wildcard and never falls back to a shorter one, so each
 * domain's virtual host carries the routes of every range that overlaps its block, the narrowest
 * first (a cloud node's /32 before the pod range around it, a pod range before the Service CIDR
 * around it), then `tail`. IPv4 ranges of /8 or longer are routed; others are not.
 */
export function rangeVirtualHosts(ranges: readonly RoutedRange[], tail: readonly DeepPartial<Route>[] = []): DeepPartial<VirtualHost>[] {
  const routable = ranges
    .filter((r) => r.cidr.family === 4 && r.cidr.prefix >= 8 && (r.ports === 'any' || r.ports.length > 0))
    .sort((a, b) => b.cidr.prefix - a.cidr.prefix || a.cidr.base - b.cidr.base);
  const blocks = new Map<string, Cidr>();
  for (const range of routable) blocks.set(wildcardDomain(range.cidr), domainBlock(range.cidr));
  return [...blocks.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([domain, block]) => ({
      name: `range_${domain}`,
      domains: [domain],
      routes: [...routable.filter((r) => cidrsOverlap(r.cidr, block)).map((r) => r.route(rangeMatch(r.cidr, r.ports))), ...tail],
    }));
}

/** A node's IPv4 pod ranges, each routed by `route` for `ports`. */
export function podRangesOf(node: TunnelNode, ports: readonly number[], route: RoutedRange['route']): RoutedRange[] {
  return node.podCIDRs.flatMap((text) => parseCidr(text) ?? []).map((cidr) => ({ cidr, ports, route }));
}
