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
  const out: { [key: string]: Json } = {};
  for (const key of keys) out[key] = expandAnys(record[key]);
  return out;
}

/** YAML with stable formatting: long lines unfolded, so diffs of two dumps stay line-oriented. */
export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0, aliasDuplicateObjects: false });
}
