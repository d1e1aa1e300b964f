// Writes a complete set of certificates for one edge-tunnel deployment, laid out as directories of
// tls.crt / tls.key / ca.crt (the shape of a Kubernetes TLS Secret), one per component.

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  cloudIdentityUri,
  createAuthority,
  edgeIdentityUri,
  issue,
  loadAuthority,
  sidecarIdentityUri,
  type Authority,
  type IssuedPem,
  type LeafRequest,
} from './issue.js';

export interface BundleRequest {
  readonly out: string;
  readonly edgeNodes: readonly string[];
  /** Names the cloud Envoy is reached by (edges check its certificate against them; IPs allowed). */
  readonly cloudNames: readonly string[];
  /** Names the xDS server is reached by. */
  readonly xdsNames: readonly string[];
  /** Validity of the leaf certificates (default 2 days: short-lived, re-issued for rotation). */
  readonly validDays?: number;
  /** Validity of the two CAs (default 10 years): a CA outlives every leaf it signs, rotated by rollover, not by calendar. */
  readonly caDays?: number;
}

export const DEFAULT_CA_DAYS = 3650;

/** Where each file of a bundle lives. */
export const bundlePaths = (out: string) => ({
  /** What everything trusts: the CA, or during a rollover the old and the next CA together. */
  ca: join(out, 'ca.crt'),
  caKey: join(out, 'ca.key'),
  /** During a CA rollover only: the next CA, which signs from `certs rollover start` on. */
  caNext: join(out, 'ca-next.crt'),
  caNextKey: join(out, 'ca-next.key'),
  clientCaNext: join(out, 'client-ca-next.crt'),
  clientCaNextKey: join(out, 'client-ca-next.key'),
  clientCa: join(out, 'client-ca.crt'),
  clientCaKey: join(out, 'client-ca.key'),
  /** A cloud client allowed to CONNECT (the demo's curl; kube-apiserver's egress certificate in production). */
  client: join(out, 'client.crt'),
  clientKey: join(out, 'client.key'),
  xdsDir: join(out, 'xds'),
  cloudDir: join(out, 'cloud'),
  edgeDir: (node: string) => join(out, 'edge', node),
  /** A sidecar's two directories: its xDS client identity, and its CONNECT client certificate. */
  sidecarXdsDir: (id: string) => join(out, 'sidecar', id, 'xds'),
  sidecarConnectDir: (id: string) => join(out, 'sidecar', id, 'connect'),
});

/** Writes a file atomically (temp file + rename), so a watcher never reads half a certificate. */
export function writeAtomically(path: string, content: string, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

export function writeTlsDir(dir: string, pem: IssuedPem, cas: Record<string, string>): void {
  writeAtomically(join(dir, 'tls.key'), pem.key, 0o600);
  writeAtomically(join(dir, 'tls.crt'), pem.cert);
  for (const [name, content] of Object.entries(cas)) writeAtomically(join(dir, name), content);
}

/** The link that names the current version of a directory published by publishTlsFiles. */
const CURRENT = '..data';

/**
 * Replaces a certificate directory's files all at once, the way kubelet updates a Secret volume: the
 * files go into a new hidden version directory, one rename of the `..data` link switches every file
 * to it (`tls.crt` is a link to `..data/tls.crt`, and so on), and older versions are removed. Envoy's
 * watched directory sees that one rename and reads a key and certificate that belong together; files
 * renamed one by one would show it a new key with the old certificate in between.
 */
export function publishTlsFiles(dir: string, files: Readonly<Record<string, { readonly content: string; readonly mode: number }>>): void {
  mkdirSync(dir, { recursive: true });
  // Unique even for two versions in one millisecond.
  const version = `..${new Date().toISOString().replace(/[:.]/g, '_')}.${randomBytes(4).toString('hex')}`;
  mkdirSync(join(dir, version));
  for (const [name, { content, mode }] of Object.entries(files)) {
    writeFileSync(join(dir, version, name), content, { mode });
    chmodSync(join(dir, version, name), mode);
  }
  const swap = (linkPath: string, target: string): void => {
    const temporary = `${linkPath}.tmp-${process.pid}`;
    rmSync(temporary, { force: true });
    symlinkSync(target, temporary);
    renameSync(temporary, linkPath);
  };
  swap(join(dir, CURRENT), version);
  for (const name of Object.keys(files)) {
    const link = join(dir, name);
    const target = `${CURRENT}/${name}`;
    const isLink = existsSync(link) && lstatSync(link).isSymbolicLink() && readlinkSync(link) === target;
    if (!isLink) swap(link, target);
  }
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith('..') && entry !== CURRENT && entry !== version) rmSync(join(dir, entry), { recursive: true, force: true });
  }
}

function splitNames(names: readonly string[]): Pick<LeafRequest, 'dnsNames' | 'ipAddresses'> {
  const isIp = (n: string): boolean => /^[\d.]+$/.test(n) || n.includes(':');
  return { dnsNames: names.filter((n) => !isIp(n)), ipAddresses: names.filter(isIp) };
}

/** X.509 caps a common name at 64 characters; node names reach 253, so the SANs carry the identity. */
const MAX_COMMON_NAME = 64;

export function edgeRequest(node: string): LeafRequest {
  const commonName = node.length <= MAX_COMMON_NAME ? node : 'edge-tunnel edge node';
  return { commonName, dnsNames: [node], uris: [edgeIdentityUri(node)], usage: 'client' };
}

export async function writeBundle(request: BundleRequest): Promise<void> {
  const paths = bundlePaths(request.out);
  const days = request.validDays ?? 2;
  const caDays = request.caDays ?? DEFAULT_CA_DAYS;
  const ca = await createAuthority('edge-tunnel CA', caDays);
  const clientCa = await createAuthority('edge-tunnel client CA', caDays);
  writeAtomically(paths.ca, ca.cert);
  writeAtomically(paths.caKey, ca.key, 0o600);
  writeAtomically(paths.clientCa, clientCa.cert);
  writeAtomically(paths.clientCaKey, clientCa.key, 0o600);

  const xds = await issue(ca, { commonName: 'edge-tunnel xDS server', ...splitNames(request.xdsNames), usage: 'server' }, days);
  writeTlsDir(paths.xdsDir, xds, { 'ca.crt': ca.cert });
  const cloud = await issue(
    ca,
    { commonName: 'edge-tunnel cloud', ...splitNames(request.cloudNames), uris: [cloudIdentityUri('cloud')], usage: 'both' },
    days,
  );
  writeTlsDir(paths.cloudDir, cloud, { 'ca.crt': ca.cert, 'client-ca.crt': clientCa.cert });
  for (const node of request.edgeNodes) await writeEdgeCertificate(request.out, ca, node, days);
  const client = await issue(clientCa, { commonName: 'edge-tunnel demo client', usage: 'client' }, days);
  writeAtomically(paths.client, client.cert);
  writeAtomically(paths.clientKey, client.key, 0o600);
}

/** Issues (or re-issues, for rotation) one edge node's certificate into an existing bundle. */
export async function writeEdgeCertificate(out: string, ca: Authority, node: string, days = 2): Promise<void> {
  const pem = await issue(ca, edgeRequest(node), days);
  writeTlsDir(bundlePaths(out).edgeDir(node), pem, { 'ca.crt': trustBundle(out) });
}

/** The CA certificates everything trusts (two during a rollover). */
export function trustBundle(out: string): string {
  return readFileSync(bundlePaths(out).ca, 'utf8');
}

/** The PEM blocks of a certificate file, one per certificate. */
export function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}

/**
 * Issues a sidecar's certificates into an existing bundle: its xDS client identity (the CA, URI SAN
 * spiffe://edge-tunnel/sidecar/<id>) and a CONNECT client certificate (the client CA), each directory
 * with the CA that signed the server it talks to.
 */
export async function writeSidecarCertificates(out: string, id: string, days = 2): Promise<void> {
  const [ca, clientCa] = [await loadBundleAuthority(out, 'ca'), await loadBundleAuthority(out, 'clientCa')];
  const paths = bundlePaths(out);
  const commonName = id.length <= MAX_COMMON_NAME ? id : 'edge-tunnel sidecar';
  writeTlsDir(paths.sidecarXdsDir(id), await issue(ca, { commonName, uris: [sidecarIdentityUri(id)], usage: 'client' }, days), { 'ca.crt': trustBundle(out) });
  writeTlsDir(paths.sidecarConnectDir(id), await issue(clientCa, { commonName, usage: 'client' }, days), { 'ca.crt': trustBundle(out) });
}

export type CaKind = 'ca' | 'clientCa';

/** The files of one of the bundle's two CAs: what is trusted, its key, and the next CA during a rollover. */
export function caFiles(out: string, which: CaKind): { trust: string; key: string; next: string; nextKey: string; retired: string } {
  const paths = bundlePaths(out);
  return which === 'ca'
    ? { trust: paths.ca, key: paths.caKey, next: paths.caNext, nextKey: paths.caNextKey, retired: join(out, 'ca-retired') }
    : { trust: paths.clientCa, key: paths.clientCaKey, next: paths.clientCaNext, nextKey: paths.clientCaNextKey, retired: join(out, 'client-ca-retired') };
}

/** The authority that signs now: the next CA while a rollover of that CA is under way. */
export async function loadBundleAuthority(out: string, which: CaKind): Promise<Authority> {
  const files = caFiles(out, which);
  if (existsSync(files.nextKey)) return loadAuthority(readFileSync(files.next, 'utf8'), readFileSync(files.nextKey, 'utf8'));
  // Outside a rollover the trust file holds the one CA; its first block is the one the key belongs to.
  return loadAuthority(pemBlocks(readFileSync(files.trust, 'utf8'))[0] ?? '', readFileSync(files.key, 'utf8'));
}
