// Versioned resources: each resource's version is a hash of its encoded bytes and each type's version a
// hash of its (name, version) pairs, so every replica of the xDS server computes the same versions and
// a proxy that moves between replicas is not sent everything again.

import { createHash } from 'node:crypto';
import type { Any } from '../../envoy/generated/google/protobuf/any.js';
import { ADS_ORDER, type XdsTypeUrl } from '../../envoy/xds-types.js';
import type { ResourceSet } from '../translate/translate.js';

export interface VersionedResource {
  readonly name: string;
  readonly any: Any;
  readonly version: string;
}

export interface TypeSnapshot {
  readonly version: string;
  readonly resources: ReadonlyMap<string, VersionedResource>;
}

export type ProxySnapshot = ReadonlyMap<XdsTypeUrl, TypeSnapshot>;

function hash(...parts: (string | Uint8Array)[]): string {
  const h = createHash('sha256');
  for (const part of parts) h.update(part);
  return h.digest('hex').slice(0, 16);
}

export function typeVersion(resources: Iterable<VersionedResource>): string {
  const pairs = [...resources].map((r) => `${r.name}=${r.version}`).sort();
  return hash(pairs.join('\n'));
}

export const EMPTY_TYPE: TypeSnapshot = { version: typeVersion([]), resources: new Map() };

/**
 * Versions a resource set. Resources whose bytes equal the previous snapshot's keep the previous
 * object, so unchanged types compare equal by version without re-hashing their contents twice.
 */
export function versionSet(set: ResourceSet, previous?: ProxySnapshot): ProxySnapshot {
  const out = new Map<XdsTypeUrl, TypeSnapshot>();
  for (const type of ADS_ORDER) {
    const byName = set.get(type);
    if (!byName) continue;
    const before = previous?.get(type);
    const resources = new Map<string, VersionedResource>();
    for (const [name, any] of byName) {
      const old = before?.resources.get(name);
      const same = old !== undefined && Buffer.compare(old.any.value, any.value) === 0;
      resources.set(name, same ? old : { name, any, version: hash(any.typeUrl, any.value) });
    }
    const version = typeVersion(resources.values());
    out.set(type, before?.version === version ? before : { version, resources });
  }
  return out;
}

/** The types whose version differs between two snapshots of one proxy. */
export function changedTypes(before: ProxySnapshot | undefined, after: ProxySnapshot | undefined): XdsTypeUrl[] {
  return ADS_ORDER.filter((type) => (before?.get(type) ?? EMPTY_TYPE).version !== (after?.get(type) ?? EMPTY_TYPE).version);
}
