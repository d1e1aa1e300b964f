// The edge's CONNECT terminator: takes HTTP/2 CONNECT streams from the edge Envoy (over a Unix socket
// only that Envoy can reach), dials the target it names and moves bytes both ways with TCP half-close
// carried faithfully: the target's FIN becomes END_STREAM, END_STREAM becomes a FIN to the target.
//
// Why it exists: Envoy 1.40 terminates CONNECT with its router's TCP upstream, and when the kubelet
// closes first it resets the tunnel stream at once (RST_STREAM INTERNAL_ERROR), throwing away whatever
// the stream still had queued behind HTTP/2 flow control, so the client gets a short file and a clean
// EOF. With this process behind it the edge Envoy forwards CONNECT untouched over HTTP/2 and, with
// upstream half-close allowed, passes END_STREAM on without a reset. Upstream pull request 47378
// (`tcp_tunnel_allow_upstream_half_close`) removes the need; the translator's `edgeConnectTermination`
// setting is the one switch back to Envoy's own terminator.
//
// Rules that keep a transfer whole or visibly broken, never silently short:
// - the target's clean FIN ends the response with END_STREAM, and the stream then stays open for
//   Envoy to close: a reset sent after END_STREAM could still discard frames queued behind flow control;
// - a target that aborts (RST, error) before its FIN resets the stream with CONNECT_ERROR, which the
//   cloud turns into an error the client sees;
// - backpressure both ways: the socket is paused while the stream's buffer is full and vice versa, so
//   memory per stream is bounded by the HTTP/2 window plus one socket read.
import http2 from 'node:http2';
import net from 'node:net';
import type { Logger } from 'pino';

const { NGHTTP2_CANCEL, NGHTTP2_CONNECT_ERROR, NGHTTP2_REFUSED_STREAM, HTTP2_HEADER_METHOD, HTTP2_HEADER_AUTHORITY, HTTP2_HEADER_STATUS } = http2.constants;

export interface TerminatorOptions {
  /** A Unix socket path (the deployment's way) or host:port on loopback (tests, `make demo`). */
  readonly listen: string;
  readonly log: Logger;
  /** How long dialing a target may take before the CONNECT is answered 504. */
  readonly dialTimeoutMs?: number;
  /** HTTP/2 stream window the terminator grants Envoy, in bytes: bounds upload bytes buffered per stream. */
  readonly streamWindowBytes?: number;
}

export interface TerminatorStats {
  /** CONNECT streams accepted and dialed. */
  streams: number;
  /** Streams now open. */
  active: number;
  /** Targets that ended cleanly (FIN) while the stream was open: every byte passed on, then END_STREAM. */
  targetClosedFirst: number;
  /** Streams reset because the target aborted (an error before its FIN). */
  targetAborted: number;
  /** CONNECTs refused: bad authority, dial failure or timeout. */
  refused: number;
}

export interface Terminator {
  /** Where it listens: the Unix socket path, or host:port with the port the kernel chose. */
  readonly address: string;
  readonly stats: Readonly<TerminatorStats>;
  /** Stops taking streams and waits up to `graceMs` (default 0) for the open ones to end. */
  close(graceMs?: number): Promise<void>;
}

const DEFAULT_DIAL_TIMEOUT_MS = 5000;
const DEFAULT_STREAM_WINDOW = 1024 * 1024;

/** host:port, with IPv6 literals in brackets as CONNECT request targets carry them. */
export function parseAuthority(value: string | undefined): { host: string; port: number } | undefined {
  if (value === undefined) return undefined;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1] ?? match[2], port };
}

/** Listen address: a path (contains "/") or host:port. */
function listenTarget(listen: string): { path: string } | { host: string; port: number } {
  if (listen.includes('/')) return { path: listen };
  const parsed = parseAuthority(listen.replace(/:0$/, ':65535'));
  if (parsed === undefined) throw new Error(`--listen "${listen}" is neither a Unix socket path nor host:port`);
  return { host: parsed.host, port: listen.endsWith(':0') ? 0 : parsed.port };
}

export async function startTerminator(options: TerminatorOptions): Promise<Terminator> {
  const log = options.log;
  const stats: TerminatorStats = { streams: 0, active: 0, targetClosedFirst: 0, targetAborted: 0, refused: 0 };
  const dialTimeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  const window = options.streamWindowBytes ?? DEFAULT_STREAM_WINDOW;
  const sessions = new Set<http2.ServerHttp2Session>();

  const server = http2.createServer({
    settings: { initialWindowSize: window, enableConnectProtocol: false },
    // Node counts every queued frame of every stream against this; the windows bound the real use.
    maxSessionMemory: 64,
  });
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', (err) => log.warn({ err }, 'HTTP/2 session error'));
    // The connection-level window: enough for many streams at full speed.
    session.setLocalWindowSize(Math.max(window * 16, 16 * 1024 * 1024));
  });
  server.on('stream', (stream, headers) => {
    const method = headers[HTTP2_HEADER_METHOD];
    const authority = headers[HTTP2_HEADER_AUTHORITY];
    const target = parseAuthority(typeof authority === 'string' ? authority : undefined);
    if (method !== 'CONNECT' || target === undefined) {
      stats.refused += 1;
      log.warn({ method, authority }, 'refused: not a CONNECT to host:port');
      stream.respond({ [HTTP2_HEADER_STATUS]: method === 'CONNECT' ? 400 : 405 }, { endStream: true });
      return;
    }
    relay(stream, target, { log, stats, dialTimeoutMs });
  });

  const where = listenTarget(options.listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if ('path' in where) server.listen(where.path, done);
    else server.listen(where.port, where.host, done);
  });
  server.on('error', (err) => log.error({ err }, 'terminator server error'));
  const bound = server.address();
  const address = typeof bound === 'string' || bound === null ? options.listen : `${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}`;
  log.info({ address, streamWindowBytes: window }, 'CONNECT terminator listening');

  return {
    address,
    stats,
    // Stops taking streams (GOAWAY) and lets open ones finish for up to `graceMs`, then cuts the rest.
    close: (graceMs = 0) =>
      new Promise<void>((resolve) => {
        const cut = setTimeout(() => {
          for (const session of sessions) session.destroy();
        }, graceMs);
        server.close(() => {
          clearTimeout(cut);
          resolve();
        });
        for (const session of sessions) session.close();
      }),
  };
}

interface RelayContext {
  readonly log: Logger;
  readonly stats: TerminatorStats;
  readonly dialTimeoutMs: number;
}

/** One CONNECT: dial, answer 200, then move bytes both ways until both directions have ended. */
function relay(stream: http2.ServerHttp2Stream, target: { host: string; port: number }, { log, stats, dialTimeoutMs }: RelayContext): void {
  const socket = net.connect({ host: target.host, port: target.port, noDelay: true, allowHalfOpen: true });
  const where = `${target.host}:${target.port}`;
  let connected = false;
  let targetEnded = false;
  let uploadDone = false;
  let aborted = false;
  const dialTimer = setTimeout(() => socket.destroy(new Error(`no connection within ${dialTimeoutMs} ms`)), dialTimeoutMs);
  // Envoy may reset the stream at any moment (its client went away): nothing may be written to it then.
  const streamGone = (): boolean => stream.closed || stream.destroyed;

  /**
   * Ends the stream with a reset (unless it is closed already) and lets a paused readable side drain, so
   * that Node destroys it; destroying it outright could drop the RST_STREAM not yet sent.
   */
  const resetStream = (code: number): void => {
    if (stream.destroyed) return;
    if (!stream.closed) stream.close(code);
    stream.resume();
  };

  /** The stream was cut: the target must see an abort (RST), never a clean end of a partial upload. */
  const abort = (): void => {
    aborted = true;
    if (!socket.destroyed) socket.resetAndDestroy();
    resetStream(NGHTTP2_CANCEL);
  };

  const refuse = (status: number, err: Error): void => {
    stats.refused += 1;
    log.warn({ target: where, err: err.message }, 'CONNECT refused: could not dial the target');
    if (!streamGone() && !stream.headersSent) stream.respond({ [HTTP2_HEADER_STATUS]: status }, { endStream: true });
    else resetStream(NGHTTP2_REFUSED_STREAM);
  };

  socket.once('connect', () => {
    clearTimeout(dialTimer);
    if (streamGone()) {
      abort();
      return;
    }
    connected = true;
    stats.streams += 1;
    stats.active += 1;
    stream.respond({ [HTTP2_HEADER_STATUS]: 200 });
  });

  // Target → stream. END_STREAM only after every byte was queued on the stream (write order).
  socket.on('data', (chunk: Buffer) => {
    if (streamGone() || stream.writableEnded) {
      abort();
      return;
    }
    if (!stream.write(chunk)) socket.pause();
  });
  stream.on('drain', () => socket.resume());
  socket.on('end', () => {
    targetEnded = true;
    if (streamGone()) return;
    if (!uploadDone) stats.targetClosedFirst += 1;
    stream.end();
  });

  // Stream → target. After the target is gone, uploads are read and dropped so that Envoy can finish.
  stream.on('data', (chunk: Buffer) => {
    if (!socket.writable) return;
    if (!socket.write(chunk)) stream.pause();
  });
  socket.on('drain', () => stream.resume());
  // A RST_STREAM shows as 'aborted' and then as 'end' of the readable side: only an end that no abort
  // came with (checked once the events of this turn have run) is the client's own END_STREAM, passed
  // on as a FIN.
  stream.on('end', () =>
    setImmediate(() => {
      if (aborted) return;
      uploadDone = true;
      if (socket.writable) socket.end();
    }),
  );
  stream.on('aborted', abort);

  socket.on('error', (err: NodeJS.ErrnoException) => {
    clearTimeout(dialTimer);
    if (!connected) {
      refuse(err.message.startsWith('no connection') ? 504 : 502, err);
      return;
    }
    if (aborted) return;
    if (targetEnded) {
      // The target had finished its output (FIN seen); a later error is about our writes to it (EPIPE
      // after it closed). Its output is complete, so keep the stream: uploads are dropped from here on.
      stream.resume();
      return;
    }
    stats.targetAborted += 1;
    log.info({ target: where, code: err.code }, 'target aborted the connection: resetting the stream');
    resetStream(NGHTTP2_CONNECT_ERROR);
  });

  // Envoy reset or closed the stream: nothing more will be sent either way.
  stream.on('close', () => {
    clearTimeout(dialTimer);
    if (connected) stats.active -= 1;
    if (!uploadDone && !targetEnded) abort();
    else socket.destroy();
  });
  stream.on('error', () => abort());
}
