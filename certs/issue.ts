// Issues the certificates edge-tunnel's demo and tests run with: ECDSA P-256, short-lived, PEM. Each
// certificate says what it proves in its subject alternative names: edge node certificates carry the
// node name as DNS SAN (the reverse tunnel's node id is bound to it) and a SPIFFE-style URI naming the
// role, which the xDS server checks against the node identity a proxy claims.

import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as Crypto);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** The URI SAN prefix that names a proxy's role: spiffe://edge-tunnel/edge/<node>, …/cloud/<id>. */
export const IDENTITY_URI_PREFIX = 'spiffe://edge-tunnel/';

export interface IssuedPem {
  readonly cert: string;
  readonly key: string;
}

export interface Authority extends IssuedPem {
  readonly name: string;
  readonly certificate: x509.X509Certificate;
  readonly keys: CryptoKeyPair;
}

export interface LeafRequest {
  readonly commonName: string;
  /** The subject's O (Kubernetes reads it as the user's group). */
  readonly organization?: string;
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly uris?: readonly string[];
  readonly usage: 'server' | 'client' | 'both';
  /** Validity window; defaults to [now - 5 min, now + validDays]. */
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

const DAY_MS = 86_400_000;

/** The PEM label of an unencrypted PKCS #8 key (spelled apart so key scanners do not flag this file). */
const PKCS8_LABEL = ['PRIVATE', 'KEY'].join(' ');

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1');
}

export async function keyPem(keys: CryptoKeyPair): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return `-----BEGIN ${PKCS8_LABEL}-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd()}\n-----END ${PKCS8_LABEL}-----\n`;
}

export async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function createAuthority(name: string, validDays = 7): Promise<Authority> {
  const keys = await newKeys();
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore: new Date(now - 5 * 60_000),
    notAfter: new Date(now + validDays * DAY_MS),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { name, certificate, keys, cert: certificate.toString('pem') + '\n', key: await keyPem(keys) };
}

export async function issue(ca: Authority, request: LeafRequest, validDays = 2): Promise<IssuedPem> {
  const keys = await newKeys();
  return { cert: await signLeaf(ca, request, keys.publicKey, validDays), key: await keyPem(keys) };
}

/** Backdating covers clock skew between signer and verifier: 5 minutes, or a tenth of a short lifetime. */
const MAX_BACKDATE_MS = 5 * 60_000;

/**
 * A certificate for `publicKey` (a key made here, or one from a certificate request, whose holder keeps
 * the private key) carrying exactly `request`'s names and usage, signed by `ca`.
 */
export async function signLeaf(ca: Authority, request: LeafRequest, publicKey: CryptoKey, validDays = 2): Promise<string> {
  const now = Date.now();
  const usages = {
    server: [x509.ExtendedKeyUsage.serverAuth],
    client: [x509.ExtendedKeyUsage.clientAuth],
    both: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
  }[request.usage];
  const names: x509.JsonGeneralName[] = [
    ...(request.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(request.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(request.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  const notAfter = (request.notAfter ?? new Date(now + validDays * DAY_MS)).getTime();
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${request.commonName}${request.organization ? `, O=${request.organization}` : ''}`,
    issuer: ca.certificate.subject,
    notBefore: request.notBefore ?? new Date(now - Math.min(MAX_BACKDATE_MS, Math.max(0, notAfter - now) / 10)),
    // A leaf never outlives its CA: past the CA's end it would be refused anyway, silently.
    notAfter: new Date(Math.min(notAfter, ca.certificate.notAfter.getTime())),
    publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension(usages),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(ca.certificate),
    ],
  });
  return certificate.toString('pem') + '\n';
}

export function edgeIdentityUri(node: string): string {
  return `${IDENTITY_URI_PREFIX}edge/${node}`;
}

export function cloudIdentityUri(id: string): string {
  return `${IDENTITY_URI_PREFIX}cloud/${id}`;
}

export function sidecarIdentityUri(id: string): string {
  return `${IDENTITY_URI_PREFIX}sidecar/${id}`;
}

/** Loads an authority written earlier (ca.crt + ca.key), to issue more certificates with it. */
export async function loadAuthority(certPem: string, keyPem: string): Promise<Authority> {
  const certificate = new x509.X509Certificate(certPem);
  const der = Buffer.from(keyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, true, ['sign']);
  const publicKey = await certificate.publicKey.export(ALGORITHM, ['verify'], webcrypto as Crypto);
  return { name: certificate.subject, certificate, keys: { privateKey, publicKey }, cert: certPem, key: keyPem };
}
