// Writes a proxy's bootstrap into a directory: envoy.yaml, and with TLS the secret files it points at.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cloudBootstrap, edgeBootstrap, renderBootstrap, sidecarBootstrap, xdsSecretFiles, type BootstrapOptions } from './bootstrap.js';

export interface WriteOptions extends Omit<BootstrapOptions, 'tls'> {
  readonly role: 'edge' | 'cloud' | 'sidecar';
  readonly outDir: string;
  /** Certificates for the xDS connection; omitted only in insecure mode. */
  readonly tls?: { readonly dir: string; readonly serverName: string };
}

export const BUILDERS = { edge: edgeBootstrap, cloud: cloudBootstrap, sidecar: sidecarBootstrap } as const;

/** Returns the path of the bootstrap to pass to `envoy -c`. */
export function writeBootstrap(options: WriteOptions): string {
  mkdirSync(options.outDir, { recursive: true });
  const tls = options.tls && { ...options.tls, secretsDir: options.outDir };
  for (const [path, content] of tls ? xdsSecretFiles(tls) : []) writeFileSync(path, content);
  const build = BUILDERS[options.role];
  const path = join(options.outDir, 'envoy.yaml');
  writeFileSync(path, renderBootstrap(build({ ...options, tls })));
  return path;
}
