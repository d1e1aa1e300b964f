// PKCS #10 certificate requests for the Kubernetes CSR API: the edge agent makes its key and a request
// on the node (the key never leaves it); the signer reads what a request asks for, and signs a
// certificate of its own making for the request's public key (it never copies the request's names or
// extensions blindly: approval decided they are exactly the node's own).

import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { keyPem, newKeys, signLeaf, type Authority, type LeafRequest } from './issue.js';

x509.cryptoProvider.set(webcrypto as Crypto);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface CertificateRequestPem {
  /** PEM "CERTIFICATE REQUEST". */
  readonly csr: string;
  /** The private key, PKCS #8 PEM: stays where it was made. */
  readonly key: string;
}

/** What a certificate request asks for, as the approver checks it. */
export interface RequestedNames {
  readonly subject: string;
  readonly commonName?: string;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly uris: readonly string[];
  readonly emails: readonly string[];
  /** "ECDSA P-256", "RSA 2048", … */
  readonly keyAlgorithm: string;
  /** The request is signed by the key it carries (proof of possession). */
  readonly signatureValid: boolean;
}

/** A new key and a request for `request`'s names, signed by that key. */
export async function createCertificateRequest(request: LeafRequest): Promise<CertificateRequestPem> {
  const keys = await newKeys();
  const names: x509.JsonGeneralName[] = [
    ...(request.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(request.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(request.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${request.commonName}`,
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : [],
  });
  return { csr: csr.toString('pem') + '\n', key: await keyPem(keys) };
}

function keyAlgorithmOf(csr: x509.Pkcs10CertificateRequest): string {
  const algorithm = csr.publicKey.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  if (algorithm.namedCurve) return `${algorithm.name} ${algorithm.namedCurve}`;
  if (algorithm.modulusLength) return `RSA ${algorithm.modulusLength}`;
  return algorithm.name;
}

/** Reads a PEM request; throws with a reason when it is not one. */
export async function readCertificateRequest(pem: string): Promise<RequestedNames> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (error) {
    throw new Error(`not a PEM certificate request: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
  const entries: x509.JsonGeneralName[] = san?.names.toJSON() ?? [];
  const of = (type: string): string[] => entries.filter((e) => e.type === type).map((e) => e.value);
  const commonName = /(?:^|,\s*)CN=([^,]*)/.exec(csr.subject)?.[1];
  return {
    subject: csr.subject,
    ...(commonName !== undefined && { commonName }),
    dnsNames: of('dns'),
    ipAddresses: of('ip'),
    uris: of('url'),
    emails: of('email'),
    keyAlgorithm: keyAlgorithmOf(csr),
    signatureValid: await csr.verify(),
  };
}

/** A certificate with exactly `names` for the request's public key, valid until `notAfter` (clamped to the CA's). */
export async function signCertificateRequest(ca: Authority, pem: string, names: LeafRequest): Promise<string> {
  const csr = new x509.Pkcs10CertificateRequest(pem);
  const publicKey = await csr.publicKey.export(webcrypto as Crypto);
  return signLeaf(ca, names, publicKey);
}

/** The validity of a PEM certificate (the first one in the file). */
export function validityOf(pem: string): { notBefore: Date; notAfter: Date; serialNumber: string; issuer: string } {
  const certificate = new x509.X509Certificate(pem);
  return { notBefore: certificate.notBefore, notAfter: certificate.notAfter, serialNumber: certificate.serialNumber, issuer: certificate.issuer };
}
