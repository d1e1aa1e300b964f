// IPv4 and IPv6 ranges: parsing, containment and overlap. Only what routing and address ownership need.

import { isIP } from 'node:net';

export interface Cidr {
  readonly family: 4 | 6;
  /** The first address of the range as a number (IPv4 only; 0 for IPv6, which is recognised but not routed). */
  readonly base: number;
  readonly prefix: number;
  /** The range as written, normalised to its first address (10.244.1.7/24 → 10.244.1.0/24). */
  readonly text: string;
}


/** An IPv4 address as a number, or undefined for anything else. */
export function ipv4Number(ip: string): number | undefined {
  if (isIP(ip) !== 4) return undefined;
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function ipv4Text(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** Parses "10.244.1.0/24" or "fd00::/64"; undefined for anything else. */
export function parseCidr(text: string): Cidr | undefined {
  const [ip, bits, ...rest] = text.split('/');
  if (rest.length > 0 || bits === undefined || !/^\d{1,3}$/.test(bits)) return undefined;
  const prefix = Number(bits);
  const family = isIP(ip);
  if (family === 6) return prefix <= 128 ? { family, base: 0, prefix, text: `${ip.toLowerCase()}/${prefix}` } : undefined;
  const value = ipv4Number(ip);
  if (value === undefined || prefix > 32) return undefined;
  const base = value - (value % 2 ** (32 - prefix));
  return { family: 4, base, prefix, text: `${ipv4Text(base)}/${prefix}` };
}

/** One address as a range of its own (/32); undefined for host names and IPv6. */
export function hostCidr(ip: string): Cidr | undefined {
  const value = ipv4Number(ip);
  return value === undefined ? undefined : { family: 4, base: value, prefix: 32, text: `${ip}/32` };
}

function end(cidr: Cidr): number {
  return cidr.base + 2 ** (32 - cidr.prefix);
}

/** Whether two IPv4 ranges share an address (IPv6 ranges are never compared: they are not routed). */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.family === 4 && b.family === 4 && a.base < end(b) && b.base < end(a);
}

/** Whether an IPv4 address lies in an IPv4 range. */
export function cidrContains(cidr: Cidr, ip: string): boolean {
  const value = ipv4Number(ip);
  return cidr.family === 4 && value !== undefined && value >= cidr.base && value < end(cidr);
}

