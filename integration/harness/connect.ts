// The client end of the tunnel, done the way kube-apiserver's egress selector dials through an HTTP CONNECT
// proxy: a bare CONNECT with `Host: 127.0.0.1`, read the response head, then speak TLS to the kubelet over
// the same socket. Written by hand rather than with http.request's 'connect' event so that the tests
// control (and see) exactly the bytes Envoy receives and answers.
import { createHash } from 'node:crypto';
import https from 'node:https';
import net from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tls from 'node:tls';

export interface ConnectOptions {
  proxyHost: string;
  proxyPort: number;
  /** host:port for the request line, e.g. "node-a.edge:10250". */
  target: string;
  hostHeader?: string;
  /** Covers connecting to the proxy and receiving the whole response head. */
  timeoutMs?: number;
  /** Speak TLS to the proxy with these options; plain TCP when absent. */
  proxyTls?: tls.ConnectionOptions;
}

export interface ConnectResult {
  status: number;
  statusLine: string;
  /** The header lines after the status line, CRLF-separated, without the final blank line. */
  headers: string;
  /** From starting to connect until the whole response head had arrived. */
  elapsedMs: number;
  /** Positioned right after the response head; already destroyed when the status is not 2xx. */
  socket: net.Socket;
}

// A proxy that never ends its head would otherwise make us buffer forever.
const MAX_HEAD_BYTES = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');

export function openConnect(opts: ConnectOptions): Promise<ConnectResult> {
  const hostHeader = opts.hostHeader ?? '127.0.0.1';
  const timeoutMs = opts.timeoutMs ?? 5000;
  const proxy = `${opts.proxyHost}:${opts.proxyPort}`;
  const started = performance.now();
  return new Promise<ConnectResult>((resolve, reject) => {
    const socket =
      opts.proxyTls === undefined
        ? net.connect({ host: opts.proxyHost, port: opts.proxyPort })
        : tls.connect({ ...opts.proxyTls, host: opts.proxyHost, port: opts.proxyPort });
    let received = Buffer.alloc(0);
    let settled = false;

    const finish = (err: Error | undefined, result?: ConnectResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (err !== undefined) {
        socket.destroy();
        reject(err);
      } else if (result !== undefined) {
        // From here on the caller owns the socket. A reset surfaces to them as 'close' (or as an error of the
        // TLS socket layered on top); without a listener an 'error' here would crash the test runner.
        socket.on('error', () => undefined);
        resolve(result);
      }
    };
    const fail = (why: string, cause?: unknown): void =>
      finish(new Error(`CONNECT ${opts.target} via ${proxy}: ${why}`, { cause }));

    const onError = (err: Error): void => fail(err.message, err);
    const onClose = (): void => {
      const got = received.length === 0 ? 'nothing' : JSON.stringify(received.toString('latin1'));
      fail(`proxy closed the connection before a complete response head (received ${got})`);
    };
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf(HEAD_END);
      if (end === -1) {
        if (received.length > MAX_HEAD_BYTES) fail(`response head exceeds ${MAX_HEAD_BYTES} bytes`);
        return;
      }
      // Stop reading before handing the socket over, and give back whatever followed the head: it belongs
      // to the tunnelled stream (the caller's TLS layer), not to the proxy's answer.
      socket.pause();
      const rest = received.subarray(end + HEAD_END.length);
      if (rest.length > 0) socket.unshift(rest);
      const head = received.subarray(0, end).toString('latin1');
      const newline = head.indexOf('\r\n');
      const statusLine = newline === -1 ? head : head.slice(0, newline);
      const headers = newline === -1 ? '' : head.slice(newline + 2);
      const match = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(statusLine);
      if (match === null) {
        fail(`malformed status line ${JSON.stringify(statusLine)}`);
        return;
      }
      const status = Number(match[1]);
      // A refused CONNECT leaves nothing useful on the socket (at most an error body).
      if (status < 200 || status > 299) socket.destroy();
      finish(undefined, { status, statusLine, headers, elapsedMs: performance.now() - started, socket });
    };

    const timer = setTimeout(() => fail(`no complete response head within ${timeoutMs} ms`), timeoutMs);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.once(opts.proxyTls === undefined ? 'connect' : 'secureConnect', () => {
      socket.on('data', onData);
      socket.write(`CONNECT ${opts.target} HTTP/1.1\r\nHost: ${hostHeader}\r\n\r\n`);
    });
  });
}

export interface TunnelRequest {
  method: string;
  path: string;
  /** Sent with Content-Length when a Buffer, chunked when streamed. */
  body?: Buffer | Iterable<Buffer> | AsyncIterable<Buffer>;
  /** TLS SNI; none by default (the tunnel target is usually an IP, and SNI must not be one). */
  servername?: string;
  headers?: Record<string, string>;
  /** Idle timeout for the exchange (default 30 s). */
  timeoutMs?: number;
  /** Set false to only hash the response, e.g. for very large downloads (body is then empty). */
  keepBody?: boolean;
}

export interface TunnelResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** Of the whole response body, also when it was not kept. */
  bytes: number;
  /** Hex sha256 of the whole response body, also when it was not kept. */
  sha256: string;
  /** CN of the certificate the far end presented: tells which kubelet answered. */
  peerSubjectCN: string | undefined;
}

/**
 * One HTTPS request over an established tunnel. The certificate is not verified (it is self-signed); the
 * test checks whom it reached by the body and by peerSubjectCN. The socket is used up afterwards.
 */
export async function httpsThroughTunnel(socket: net.Socket, request: TunnelRequest): Promise<TunnelResponse> {
  let tlsSocket: tls.TLSSocket | undefined;
  try {
    return await new Promise<TunnelResponse>((resolve, reject) => {
      const body = request.body;
      const headers: Record<string, string> = { ...request.headers };
      if (Buffer.isBuffer(body)) headers['content-length'] = String(body.length);
      const req = https.request(
        {
          method: request.method,
          path: request.path,
          host: request.servername ?? '127.0.0.1',
          headers,
          // No agent: the connection is this tunnel and nothing else, and it is not pooled for reuse.
          createConnection: () => {
            tlsSocket = tls.connect({ socket, servername: request.servername, rejectUnauthorized: false });
            return tlsSocket;
          },
        },
        (res) => {
          const hash = createHash('sha256');
          const chunks: Buffer[] = [];
          let bytes = 0;
          res.on('data', (chunk: Buffer) => {
            hash.update(chunk);
            bytes += chunk.length;
            if (request.keepBody !== false) chunks.push(chunk);
          });
          res.on('error', reject);
          res.on('end', () => {
            const cn = tlsSocket?.getPeerCertificate().subject?.CN;
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks),
              bytes,
              sha256: hash.digest('hex'),
              peerSubjectCN: Array.isArray(cn) ? cn.join(',') : cn,
            });
          });
        },
      );
      const timeoutMs = request.timeoutMs ?? 30_000;
      req.setTimeout(timeoutMs, () => {
        req.destroy(new Error(`${request.method} ${request.path} through the tunnel: idle for ${timeoutMs} ms`));
      });
      req.on('error', reject);
      if (body === undefined || Buffer.isBuffer(body)) {
        req.end(body);
      } else {
        pipeline(Readable.from(body), req).catch(reject);
      }
    });
  } finally {
    tlsSocket?.destroy();
    socket.destroy();
  }
}

export interface ProxyAddress {
  host: string;
  port: number;
  proxyTls?: tls.ConnectionOptions;
}

/** CONNECT to `target` through `proxy`, GET `path` over TLS, close. Throws when the CONNECT is refused. */
export async function getThroughProxy(proxy: ProxyAddress, target: string, path: string, timeoutMs?: number): Promise<TunnelResponse> {
  const tunnel = await openConnect({ proxyHost: proxy.host, proxyPort: proxy.port, target, proxyTls: proxy.proxyTls, timeoutMs });
  if (tunnel.status < 200 || tunnel.status > 299) {
    tunnel.socket.destroy();
    throw new Error(`CONNECT ${target} via ${proxy.host}:${proxy.port} refused: ${tunnel.statusLine}`);
  }
  return httpsThroughTunnel(tunnel.socket, { method: 'GET', path, timeoutMs });
}
