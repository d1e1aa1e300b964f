// The terminator's Prometheus metrics, read from its stats when scraped, and the small HTTP server that
// serves them (`--metrics HOST:PORT`, loopback by default: the edge host's own monitoring reads it).
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { TerminatorStats } from './terminator.js';

/** A registry that reads `stats` at scrape time: counters for what only grows, a gauge for open streams. */
export function terminatorRegistry(stats: Readonly<TerminatorStats>): Registry {
  const registry = new Registry();
  const registers = [registry];
  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({ name, help, registers, collect() { this.reset(); this.inc(read()); } });
  };
  counter('connect_terminator_streams_total', 'CONNECT streams accepted and dialed', () => stats.streams);
  counter('connect_terminator_target_closed_first_total', 'Targets that closed first, every byte passed on before END_STREAM', () => stats.targetClosedFirst);
  counter('connect_terminator_target_aborted_total', 'Streams reset because the target aborted before its FIN', () => stats.targetAborted);
  counter('connect_terminator_refused_total', 'CONNECTs refused: bad authority, dial failure or timeout', () => stats.refused);
  new Gauge({ name: 'connect_terminator_streams_active', help: 'CONNECT streams open now', registers, collect() { this.set(stats.active); } });
  return registry;
}

export function metricsServer(registry: Registry): Server {
  return createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('endpoints: /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics: ${String(err)}\n`),
    );
  });
}
