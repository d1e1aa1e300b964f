// Renders Envoy messages as readable JSON/YAML the way Envoy's config_dump does: every `Any` expanded
// to its message with an "@type" key. Shared by the golden files, `xds dump` and agent-bootstrap.

import { stringify } from 'yaml';
import { Any } from './generated/google/protobuf/any.js';
import { codecForTypeUrl } from './registry.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Expands one packed resource into plain JSON with "@type" first. */
export function anyToJson(any: Any): Json {
  const codec = codecForTypeUrl(any.typeUrl);
  if (!codec) return { '@type': any.typeUrl, value: Buffer.from(any.value).toString('base64') };
  return { '@type': any.typeUrl, ...asObject(expandAnys(codec.toJSON(codec.decode(any.value)))) };
}

function asObject(json: Json): { [key: string]: Json } {
  return json !== null && typeof json === 'object' && !Array.isArray(json) ? json : { value: json };
}

/** ts-proto's JSON writes nested Any as {typeUrl, value: base64}; expand those recursively. */
function expandAnys(value: unknown): Json {
  if (Array.isArray(value)) return value.map(expandAnys);
  if (value === null || typeof value !== 'object') return value as Json;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  const anyShaped = keys.every((k) => k === 'typeUrl' || k === 'value');
  if (anyShaped && typeof record.typeUrl === 'string') {
    const value = typeof record.value === 'string' ? record.value : '';
    return anyToJson({ typeUrl: record.typeUrl, value: Buffer.from(value, 'base64') });
  }
  const duration = durationString(record, keys);
  if (duration !== undefined) return duration;
  const out: { [key: string]: Json } = {};
  for (const key of keys) out[key] = expandAnys(record[key]);
  return out;
}

/**
 * ts-proto writes google.protobuf.Duration as {seconds, nanos}; the canonical JSON form, which Envoy's
 * YAML loader requires, is a string such as "1.5s". No other message edge-tunnel uses has only these
 * fields. An all-default Duration is written by ts-proto as {} and stays so (shown, never parsed).
 */
function durationString(record: Record<string, unknown>, keys: string[]): string | undefined {
  if (keys.length === 0 || !keys.every((k) => (k === 'seconds' || k === 'nanos') && typeof record[k] === 'number')) {
    return undefined;
  }
  const total = (record.seconds as number | undefined ?? 0) + (record.nanos as number | undefined ?? 0) / 1e9;
  return `${Number(total.toFixed(9))}s`;
}

/** YAML with stable formatting: long lines unfolded, so diffs of two dumps stay line-oriented. */
export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0, aliasDuplicateObjects: false });
}
