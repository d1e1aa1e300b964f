// Projects Kubernetes objects (a Node, a ServiceCIDR) onto the few fields edge-tunnel uses. Everything else in a Node (status
// conditions, heartbeat times, images, allocatable) changes all the time and matters to us not at all,
// so comparing projections is how no-op updates are recognised.
//
// Input is read as untyped JSON on purpose: watch events arrive as plain parsed JSON, list items as the
// client's model classes, and the fields read here are spelled the same in both (the kubelet endpoint's
// port is `Port`, capitalised, in the API and in the client's model alike).

import { DEFAULT_KUBELET_PORT, type TunnelNode } from '../model/node.js';
import type { LabelSelector } from './label-selector.js';

/** A projected object, keyed by its name, with the resourceVersion the API gave it. */
export interface Projected<T> {
  readonly key: string;
  readonly resourceVersion: string;
  readonly value: T;
}

/** The address types a node may be dialled by, in the order they are listed. */
const ADDRESS_TYPES = ['InternalIP', 'ExternalIP', 'Hostname'] as const;

/** Returns undefined for an object without a name, which the API never sends. */
export function projectNode(object: unknown, edgeSelector: LabelSelector): Projected<TunnelNode> | undefined {
  const metadata = field(object, 'metadata');
  const name = field(metadata, 'name');
  if (typeof name !== 'string' || name === '') return undefined;
  const resourceVersion = field(metadata, 'resourceVersion');
  const spec = field(object, 'spec');
  const status = field(object, 'status');
  const labels = stringRecord(field(metadata, 'labels'));
  return {
    key: name,
    resourceVersion: typeof resourceVersion === 'string' ? resourceVersion : '',
    value: {
      name,
      addresses: addressesOf(field(status, 'addresses')),
      kubeletPort: kubeletPortOf(field(field(field(status, 'daemonEndpoints'), 'kubeletEndpoint'), 'Port')),
      role: edgeSelector.matches(labels) ? 'edge' : 'cloud',
      labels,
      podCIDRs: podCIDRsOf(field(spec, 'podCIDRs'), field(spec, 'podCIDR')),
      ...createdAtOf(field(metadata, 'creationTimestamp')),
    },
  };
}

/** A ServiceCIDR's ranges (spec.cidrs), keyed by its name. */
export function projectServiceCidr(object: unknown): Projected<readonly string[]> | undefined {
  const { name, resourceVersion } = objectMeta(object);
  if (name === undefined || name === '') return undefined;
  const cidrs = field(field(object, 'spec'), 'cidrs');
  const value = Array.isArray(cidrs) ? cidrs.filter((c): c is string => typeof c === 'string') : [];
  return { key: name, resourceVersion: resourceVersion ?? '', value };
}

/** The name and resourceVersion of any object (a deleted Node, a bookmark). */
export function objectMeta(object: unknown): { name?: string; resourceVersion?: string } {
  const metadata = field(object, 'metadata');
  const name = field(metadata, 'name');
  const resourceVersion = field(metadata, 'resourceVersion');
  return {
    ...(typeof name === 'string' ? { name } : {}),
    ...(typeof resourceVersion === 'string' && resourceVersion !== '' ? { resourceVersion } : {}),
  };
}

function addressesOf(value: unknown): string[] {
  const entries = Array.isArray(value) ? value : [];
  const addresses: string[] = [];
  for (const type of ADDRESS_TYPES) {
    for (const entry of entries) {
      const address = field(entry, 'address');
      if (field(entry, 'type') === type && typeof address === 'string' && address !== '' && !addresses.includes(address)) {
        addresses.push(address);
      }
    }
  }
  return addresses;
}

/** Watch events carry the RFC 3339 string, list items a Date: both become "2026-12-01T17:48:53Z". */
function createdAtOf(value: unknown): { createdAt?: string } {
  if (value instanceof Date && !Number.isNaN(value.getTime())) return { createdAt: value.toISOString().replace(/\.\d{3}Z$/, 'Z') };
  return typeof value === 'string' && value !== '' ? { createdAt: value } : {};
}

function kubeletPortOf(value: unknown): number {
  // The kubelet reports 0 until it knows its port; treat that like absent.
  return typeof value === 'number' && value !== 0 ? value : DEFAULT_KUBELET_PORT;
}

function podCIDRsOf(list: unknown, single: unknown): string[] {
  if (Array.isArray(list)) return list.filter((cidr): cidr is string => typeof cidr === 'string');
  return typeof single === 'string' && single !== '' ? [single] : [];
}

/** Labels with their keys sorted, so two projections of one node compare and serialise alike. */
function stringRecord(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null) return {};
  const entries = Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string');
  return Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}
