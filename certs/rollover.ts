// Rolling the bundle's CA (the one that signs the cloud, the xDS server, edge nodes and sidecars'
// xDS identities) without a dropped tunnel, in three steps with an overlap:
//
//   start    a next CA is made; everything trusts old and next (every component's ca.crt, which Envoy
//            and the xDS server reload by themselves), and new certificates are signed by the next CA
//   reissue  every certificate of the bundle is re-issued by the next CA, same names, same usages
//   finish   refused while any certificate is still signed by the old CA; then the next CA becomes the
//            CA, everything trusts it alone, and the old one is kept as ca-retired.{crt,key}
//
// Between the steps, the new trust must reach every host (Secrets update, edge node files); existing
// TLS sessions are never interrupted, and new handshakes succeed at every stage.

import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CA_DAYS, bundlePaths, loadBundleAuthority, pemBlocks, trustBundle, writeAtomically, writeTlsDir } from './bundle.js';
import { createAuthority, issue, type LeafRequest } from './issue.js';

interface LeafDir {
  readonly dir: string;
  readonly usage: LeafRequest['usage'];
}

/** Every directory of the bundle whose certificate the CA signs, with the usage it was issued for. */
function leafDirs(out: string): LeafDir[] {
  const paths = bundlePaths(out);
  const children = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).sort().map((name) => join(dir, name)) : []);
  return [
    { dir: paths.xdsDir, usage: 'server' as const },
    { dir: paths.cloudDir, usage: 'both' as const },
    ...children(join(out, 'edge')).map((dir) => ({ dir, usage: 'client' as const })),
    ...children(join(out, 'sidecar')).map((dir) => ({ dir: join(dir, 'xds'), usage: 'client' as const })),
  ].filter((leaf) => existsSync(join(leaf.dir, 'tls.crt')));
}

/** Every directory that holds a ca.crt to keep in step with the trust bundle. */
function trustDirs(out: string): string[] {
  const sidecars = existsSync(join(out, 'sidecar')) ? readdirSync(join(out, 'sidecar')).map((id) => join(out, 'sidecar', id, 'connect')) : [];
  return [...leafDirs(out).map((leaf) => leaf.dir), ...sidecars].filter((dir) => existsSync(join(dir, 'ca.crt')));
}

function writeTrust(out: string, pem: string): void {
  writeAtomically(bundlePaths(out).ca, pem);
  for (const dir of trustDirs(out)) writeAtomically(join(dir, 'ca.crt'), pem);
}

/** The request that issued a certificate (names, usage), to issue it again. */
function requestOf(cert: X509Certificate, usage: LeafRequest['usage']): LeafRequest {
  const entries = (cert.subjectAltName ?? '').split(', ').filter(Boolean).map((entry) => [entry.slice(0, entry.indexOf(':')), entry.slice(entry.indexOf(':') + 1)]);
  const of = (kind: string): string[] => entries.filter(([k]) => k === kind).map(([, v]) => v);
  return { commonName: /CN=([^\n]*)/.exec(cert.subject)?.[1] ?? 'edge-tunnel', dnsNames: of('DNS'), ipAddresses: of('IP Address'), uris: of('URI'), usage };
}

export async function startRollover(out: string, caDays = DEFAULT_CA_DAYS): Promise<void> {
  const paths = bundlePaths(out);
  if (existsSync(paths.caNextKey)) throw new Error(`a CA rollover is already under way (${paths.caNextKey} exists): finish it first`);
  const current = pemBlocks(trustBundle(out));
  if (current.length !== 1) throw new Error(`${paths.ca} holds ${current.length} certificates; a rollover starts from one CA`);
  const next = await createAuthority(`edge-tunnel CA ${new Date().toISOString().slice(0, 10)}`, caDays);
  writeAtomically(paths.caNextKey, next.key, 0o600);
  writeAtomically(paths.caNext, next.cert);
  writeTrust(out, current[0] + next.cert);
}

/** Re-issues every certificate the CA signs with the authority that signs now (the next CA during a rollover). */
export async function reissueAll(out: string, days = 2): Promise<string[]> {
  const ca = await loadBundleAuthority(out, 'ca');
  const trust = trustBundle(out);
  const written: string[] = [];
  for (const leaf of leafDirs(out)) {
    const cert = new X509Certificate(readFileSync(join(leaf.dir, 'tls.crt')));
    writeTlsDir(leaf.dir, await issue(ca, requestOf(cert, leaf.usage), days), { 'ca.crt': trust });
    written.push(leaf.dir);
  }
  return written;
}

export async function finishRollover(out: string): Promise<void> {
  const paths = bundlePaths(out);
  if (!existsSync(paths.caNextKey)) throw new Error('no CA rollover is under way (start one with `certs rollover start`)');
  const next = new X509Certificate(readFileSync(paths.caNext));
  const stale = leafDirs(out).filter((leaf) => !new X509Certificate(readFileSync(join(leaf.dir, 'tls.crt'))).verify(next.publicKey));
  if (stale.length > 0) {
    throw new Error(`still signed by the old CA, re-issue them first (certs reissue): ${stale.map((leaf) => leaf.dir).join(', ')}`);
  }
  const old = pemBlocks(trustBundle(out))[0] ?? '';
  writeAtomically(join(out, 'ca-retired.crt'), old);
  renameSync(paths.caKey, join(out, 'ca-retired.key'));
  renameSync(paths.caNextKey, paths.caKey);
  writeTrust(out, readFileSync(paths.caNext, 'utf8'));
  rmSync(paths.caNext);
}
