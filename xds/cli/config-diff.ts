// What `xds diff` compares: the resources the control plane intends for a proxy (its dump, in the
// translator's golden shape) against what that Envoy runs (its admin /config_dump). Envoy prints proto
// field names in snake_case and omits or spells defaults its own way ("0s" where the intent has an
// empty Duration), so both sides are normalised first: camelCase keys (map keys such as filter names
// are left alone), default values (0, false, "", "0s", empty objects and lists) dropped.

import type { Json } from '../../envoy/render.js';

export type { Json };
type JsonObject = { [key: string]: Json };

const isObject = (value: Json | undefined): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

function camel(key: string): string {
  return /^[a-z][a-z0-9_]*$/.test(key) ? key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()) : key;
}

function isDefault(value: Json): boolean {
  return value === null || value === 0 || value === false || value === '' || value === '0s' || (Array.isArray(value) && value.length === 0) || (isObject(value) && Object.keys(value).length === 0);
}

/** Durations as one spelling: Envoy writes "0.040s" where the intent has "0.04s". */
const DURATION = /^\d+(\.\d+)?s$/;

/** A resource as a comparable tree: camelCase keys, durations in one spelling, defaults dropped, keys sorted. */
export function normalise(value: Json): Json {
  if (Array.isArray(value)) return value.map(normalise);
  if (typeof value === 'string' && DURATION.test(value)) return `${Number(value.slice(0, -1))}s`;
  if (!isObject(value)) return value;
  const entries = Object.entries(value)
    .map(([key, v]): [string, Json] => [camel(key), normalise(v)])
    .filter(([, v]) => !isDefault(v))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(entries);
}

/** The dynamic resources in an Envoy /config_dump, by short type name and resource name. */
export function runningResources(configDump: Json, ignoredSecrets: readonly string[]): Record<string, Map<string, Json>> {
  const out: Record<string, Map<string, Json>> = { Cluster: new Map(), Listener: new Map(), RouteConfiguration: new Map(), Secret: new Map() };
  const configs = isObject(configDump) && Array.isArray(configDump.configs) ? configDump.configs : [];
  const add = (type: string, resource: Json | undefined): void => {
    if (isObject(resource) && typeof resource.name === 'string') out[type].set(resource.name, resource);
  };
  for (const config of configs) {
    if (!isObject(config)) continue;
    const list = (key: string): Json[] => (Array.isArray(config[key]) ? config[key] : []);
    for (const entry of list('dynamic_active_clusters')) if (isObject(entry)) add('Cluster', entry.cluster);
    for (const entry of list('dynamic_listeners')) if (isObject(entry) && isObject(entry.active_state)) add('Listener', entry.active_state.listener);
    for (const entry of list('dynamic_route_configs')) if (isObject(entry)) add('RouteConfiguration', entry.route_config);
    for (const entry of list('dynamic_active_secrets')) {
      if (isObject(entry) && isObject(entry.secret) && !ignoredSecrets.includes(String(entry.secret.name))) add('Secret', entry.secret);
    }
  }
  return out;
}

/** Listeners whose last update the Envoy rejected, with its error (config_dump's error_state). */
export function rejectedListeners(configDump: Json): { name: string; detail: string }[] {
  const configs = isObject(configDump) && Array.isArray(configDump.configs) ? configDump.configs : [];
  return configs.flatMap((config) => (isObject(config) && Array.isArray(config.dynamic_listeners) ? config.dynamic_listeners : [])).flatMap((listener) => {
    if (!isObject(listener) || !isObject(listener.error_state)) return [];
    return [{ name: String(listener.name), detail: String(listener.error_state.details ?? '') }];
  });
}

export interface ResourceDiff {
  readonly type: string;
  readonly name: string;
  /** missing: intended, not running; extra: running, not intended; changed: both, different. */
  readonly change: 'missing' | 'extra' | 'changed';
  /** For changed: the first differing paths, "path: intended ≠ running". */
  readonly details: readonly string[];
}

function differences(a: Json, b: Json, path: string, out: string[], limit: number): void {
  if (out.length >= limit) return;
  if (isObject(a) && isObject(b)) {
    for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) differences(a[key] ?? null, b[key] ?? null, `${path}.${key}`, out, limit);
  } else if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    a.forEach((item, i) => differences(item, b[i], `${path}[${i}]`, out, limit));
  } else if (JSON.stringify(a) !== JSON.stringify(b)) {
    const show = (v: Json): string => (v === null ? '(absent)' : JSON.stringify(v).slice(0, 120));
    out.push(`${path.slice(1)}: ${show(a)} ≠ ${show(b)}`);
  }
}

/**
 * Envoy shows a secret's files as their loaded contents (the private key redacted), never their paths:
 * data sources are compared by presence only, and their contents never printed.
 */
function maskDataSources(value: Json): Json {
  if (Array.isArray(value)) return value.map(maskDataSources);
  if (!isObject(value)) return value;
  const keys = Object.keys(value);
  if (keys.length === 1 && ['filename', 'inlineBytes', 'inlineString', 'inline_bytes', 'inline_string'].includes(keys[0])) return '<data source>';
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskDataSources(v)]));
}

/** Every difference between the intended resources ({Type: [resource]}) and the running ones. */
export function diffConfigs(intended: Record<string, Json[]>, running: Record<string, Map<string, Json>>, limit = 5): ResourceDiff[] {
  const diffs: ResourceDiff[] = [];
  for (const type of Object.keys(running)) {
    const wanted = new Map((intended[type] ?? []).flatMap((r) => (isObject(r) && typeof r.name === 'string' ? [[r.name, r] as [string, Json]] : [])));
    for (const name of [...new Set([...wanted.keys(), ...running[type].keys()])].sort()) {
      const a = wanted.get(name);
      const b = running[type].get(name);
      if (a === undefined) diffs.push({ type, name, change: 'extra', details: [] });
      else if (b === undefined) diffs.push({ type, name, change: 'missing', details: [] });
      else {
        const details: string[] = [];
        const comparable = (r: Json): Json => normalise(type === 'Secret' ? maskDataSources(r) : r);
        differences(comparable(a), comparable(b), '', details, limit);
        if (details.length > 0) diffs.push({ type, name, change: 'changed', details });
      }
    }
  }
  return diffs;
}
