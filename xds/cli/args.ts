// Parsing helpers for the CLI: host:port pairs and port lists, with errors that name the flag.

import type { SocketAddress } from '../model/settings.js';

export class UsageError extends Error {}

export function hostPort(flag: string, value: string): SocketAddress {
  const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(value);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port < 0 || port > 65535) throw new UsageError(`--${flag}: "${value}" is not HOST:PORT`);
  return { address: match[1].replace(/^\[|\]$/g, ''), port };
}

export function portList(flag: string, value: string): number[] {
  const ports = value.split(',').filter(Boolean).map(Number);
  if (ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
    throw new UsageError(`--${flag}: "${value}" is not a comma-separated list of ports`);
  }
  return ports;
}

export function positiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${flag}: "${value}" is not a whole number above 0`);
  return n;
}

export function port(flag: string, value: string): number {
  const ports = portList(flag, value);
  if (ports.length !== 1) throw new UsageError(`--${flag}: "${value}" is not one port`);
  return ports[0];
}

export function nonNegativeInt(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${flag}: "${value}" is not a whole number`);
  return n;
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** "30s", "10m", "24h", "7d" (or plain seconds) as whole seconds above 0. */
export function durationSeconds(flag: string, value: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(value.trim());
  const seconds = match ? Number(match[1]) * DURATION_UNITS[match[2] || 's'] : NaN;
  if (!Number.isInteger(seconds) || seconds < 1) throw new UsageError(`--${flag}: "${value}" is not a duration such as 30s, 10m, 24h or 7d`);
  return seconds;
}
