// Rolling one of the bundle's CAs without a dropped tunnel, in three steps with an overlap:
//
//   start    a next CA is made; everything that trusts the CA trusts old and next (files Envoy and the
//            xDS server reload by themselves), and new certificates are signed by the next CA
//   reissue  every certificate the CA signs is re-issued by the next CA, same names, same usages
//   finish   refused while any certificate is still signed by the old CA; then the next CA becomes the
//            CA, everything trusts it alone, and the old one is kept as <ca>-retired.{crt,key}
//
// The CA (`ca`) signs the cloud, the xDS server, edge nodes and sidecars' xDS identities, and is
// trusted by all of them; the client CA (`clientCa`) signs CONNECT clients (the bundle's demo client,
// sidecars' CONNECT certificates; kube-apiserver's and Prometheus' are re-issued with `certs client`)
// and is trusted by the cloud's CONNECT listener alone. Between the steps, the new files must reach
// every host; existing TLS sessions are never interrupted, and new handshakes succeed at every stage.

import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DEFAULT_CA_DAYS, bundlePaths, caFiles, loadBundleAuthority, pemBlocks, writeAtomically, writeTlsDir, type CaKind } from './bundle.js';
import { sanEntries } from '../xds/protocol/identity.js';
import { createAuthority, issue, type LeafRequest } from './issue.js';

/** A certificate the CA signs: its files, the usage it was issued for, the trust file kept beside it. */
interface Leaf {
  readonly cert: string;
  readonly key: string;
  readonly usage: LeafRequest['usage'];
}

function children(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort().map((name) => join(dir, name)) : [];
}

function leaves(out: string, which: CaKind): Leaf[] {
  const paths = bundlePaths(out);
  const inDir = (dir: string, usage: LeafRequest['usage']): Leaf => ({ cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), usage });
  const all =
    which === 'ca'
      ? [
          inDir(paths.xdsDir, 'server'),
          inDir(paths.cloudDir, 'both'),
          ...children(join(out, 'edge')).map((dir) => inDir(dir, 'client')),
          ...children(join(out, 'sidecar')).map((dir) => inDir(join(dir, 'xds'), 'client')),
        ]
      : [{ cert: paths.client, key: paths.clientKey, usage: 'client' as const }, ...children(join(out, 'sidecar')).map((dir) => inDir(join(dir, 'connect'), 'client'))];
  return all.filter((leaf) => existsSync(leaf.cert));
}

/** Every file that holds the CA's trust, to keep in step with it. */
function trustFiles(out: string, which: CaKind): string[] {
  const paths = bundlePaths(out);
  if (which === 'clientCa') return [paths.clientCa, join(paths.cloudDir, 'client-ca.crt')].filter(existsSync);
  const sidecarConnect = children(join(out, 'sidecar')).map((dir) => join(dir, 'connect', 'ca.crt'));
  const leafTrust = leaves(out, 'ca').map((leaf) => join(leaf.cert, '..', 'ca.crt'));
  return [paths.ca, ...leafTrust, ...sidecarConnect].filter(existsSync);
}

function writeTrust(out: string, which: CaKind, pem: string): void {
  for (const file of trustFiles(out, which)) writeAtomically(file, pem);
}

/** The request that issued a certificate (names, usage), to issue it again. */
function requestOf(cert: X509Certificate, usage: LeafRequest['usage']): LeafRequest {
  const entries = sanEntries(cert.subjectAltName ?? '');
  const of = (kind: string): string[] => entries.filter(([k]) => k === kind).map(([, v]) => v);
  return { commonName: /CN=([^\n]*)/.exec(cert.subject)?.[1] ?? 'edge-tunnel', dnsNames: of('DNS'), ipAddresses: of('IP Address'), uris: of('URI'), usage };
}

export async function startRollover(out: string, which: CaKind = 'ca', caDays = DEFAULT_CA_DAYS): Promise<void> {
  const files = caFiles(out, which);
  if (existsSync(files.nextKey)) throw new Error(`a rollover of this CA is already under way (${files.nextKey} exists): finish it first`);
  const current = pemBlocks(readFileSync(files.trust, 'utf8'));
  if (current.length !== 1) throw new Error(`${files.trust} holds ${current.length} certificates; a rollover starts from one CA`);
  const name = which === 'ca' ? 'edge-tunnel CA' : 'edge-tunnel client CA';
  const next = await createAuthority(`${name} ${new Date().toISOString().slice(0, 10)}`, caDays);
  writeAtomically(files.nextKey, next.key, 0o600);
  writeAtomically(files.next, next.cert);
  writeTrust(out, which, current[0] + next.cert);
}

/** Re-issues every certificate the CA signs with the authority that signs now (the next CA during a rollover). */
export async function reissueAll(out: string, which: CaKind = 'ca', days = 2): Promise<string[]> {
  const ca = await loadBundleAuthority(out, which);
  const written: string[] = [];
  for (const leaf of leaves(out, which)) {
    const pem = await issue(ca, requestOf(new X509Certificate(readFileSync(leaf.cert)), leaf.usage), days);
    if (basename(leaf.cert) === 'tls.crt') {
      const dir = dirname(leaf.cert);
      writeTlsDir(dir, pem, existsSync(join(dir, 'ca.crt')) ? { 'ca.crt': readFileSync(join(dir, 'ca.crt'), 'utf8') } : {});
    } else {
      writeAtomically(leaf.key, pem.key, 0o600);
      writeAtomically(leaf.cert, pem.cert);
    }
    written.push(leaf.cert);
  }
  return written;
}

export async function finishRollover(out: string, which: CaKind = 'ca'): Promise<void> {
  const files = caFiles(out, which);
  if (!existsSync(files.nextKey)) throw new Error('no rollover of this CA is under way (start one with `certs rollover start`)');
  const next = new X509Certificate(readFileSync(files.next));
  const stale = leaves(out, which).filter((leaf) => !new X509Certificate(readFileSync(leaf.cert)).verify(next.publicKey));
  if (stale.length > 0) throw new Error(`still signed by the old CA, re-issue them first (certs reissue): ${stale.map((leaf) => leaf.cert).join(', ')}`);
  writeAtomically(`${files.retired}.crt`, pemBlocks(readFileSync(files.trust, 'utf8'))[0] ?? '');
  renameSync(files.key, `${files.retired}.key`);
  renameSync(files.nextKey, files.key);
  writeTrust(out, which, readFileSync(files.next, 'utf8'));
  rmSync(files.next);
}
