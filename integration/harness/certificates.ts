// Looking at certificates from the outside, for the rotation tests: which certificate a TLS port presents
// to a new handshake, which ones an Envoy holds (its admin /certs), and an HTTP/1.1 keep-alive session
// over one CONNECT tunnel, so that a test can send a request before and after a rotation on the very same
// connection.
import { X509Certificate } from 'node:crypto';
import type net from 'node:net';
import tls from 'node:tls';
import type { EnvoyAdmin } from './envoy.js';

/** Serials compared as numbers: lower-case hex without leading zeros or separators. */
export function normalizeSerial(serial: string): string {
  const hex = serial.replace(/[^0-9a-fA-F]/g, '').toLowerCase().replace(/^0+/, '');
  return hex === '' ? '0' : hex;
}

/** The serial of the first certificate in a PEM text, normalized. */
export function serialOfPem(pem: string | Buffer): string {
  return normalizeSerial(new X509Certificate(pem).serialNumber);
}

export interface PresentedCertificateOptions {
  host: string;
  port: number;
  /** ca/cert/key of the client; the server's certificate is verified against `ca` (and `host`). */
  tls: tls.ConnectionOptions;
  timeoutMs?: number;
}

/**
 * Makes a fresh TLS handshake and resolves with the serial (normalized) of the certificate the server
 * presented. Rejects when the handshake fails or does not finish in time.
 */
export function presentedSerial(opts: PresentedCertificateOptions): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  return new Promise<string>((resolve, reject) => {
    const socket = tls.connect({ ...opts.tls, host: opts.host, port: opts.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`TLS handshake with ${opts.host}:${opts.port} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      if (typeof serial === 'string' && serial !== '') resolve(normalizeSerial(serial));
      else reject(new Error(`${opts.host}:${opts.port} presented no certificate`));
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`TLS handshake with ${opts.host}:${opts.port}: ${err.message}`, { cause: err }));
    });
  });
}

export interface EnvoyCertificateInfo {
  /** Normalized. */
  serial: string;
  kind: 'ca_cert' | 'cert_chain';
  /** Index of the TLS context in /certs (one per listener or cluster transport socket). */
  context: number;
}

interface CertsJson {
  certificates?: { ca_cert?: { serial_number?: string }[]; cert_chain?: { serial_number?: string }[] }[];
}

/** Every certificate an Envoy's TLS contexts hold, from its admin `/certs`. */
export async function envoyCertificates(admin: EnvoyAdmin): Promise<EnvoyCertificateInfo[]> {
  const { status, body } = await admin.get('/certs');
  if (status !== 200) throw new Error(`admin /certs on port ${admin.port} answered ${status}`);
  const json = JSON.parse(body) as CertsJson;
  return (json.certificates ?? []).flatMap((context, index) =>
    (['ca_cert', 'cert_chain'] as const).flatMap((kind) =>
      (context[kind] ?? []).map((cert) => ({ serial: normalizeSerial(cert.serial_number ?? ''), kind, context: index })),
    ),
  );
}

/** The distinct serials of the certificates an Envoy presents as its own (cert_chain), sorted. */
export async function envoyOwnSerials(admin: EnvoyAdmin): Promise<string[]> {
  const certs = await envoyCertificates(admin);
  return [...new Set(certs.filter((c) => c.kind === 'cert_chain').map((c) => c.serial))].sort();
}

export interface SessionResponse {
  status: number;
  headers: string;
  body: string;
}

/**
 * HTTP/1.1 with keep-alive over TLS over one established CONNECT tunnel: every request goes over the same
 * TCP connection to the proxy, so a request that succeeds after some event proves the tunnel survived
 * it. Responses must carry Content-Length (the stand-in kubelet's do). The far end's certificate is not
 * verified (the stand-in kubelet's is self-signed); `peerSubjectCN` says who answered.
 */
export class TunnelSession {
  private received = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private closedBy: string | undefined;
  /** The request in flight: HTTP/1.1 answers come in order, so callers take turns. */
  private turn: Promise<unknown> = Promise.resolve();
  /** Requests answered on this session. */
  answered = 0;

  private constructor(private readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.wake?.();
    });
    socket.on('error', (err) => {
      this.closedBy ??= `error: ${err.message}`;
      this.wake?.();
    });
    socket.on('end', () => {
      this.closedBy ??= 'the far end ended the connection';
      this.wake?.();
    });
    socket.on('close', () => {
      this.closedBy ??= 'the connection closed';
      this.wake?.();
    });
  }

  /** Starts TLS on `tunnel` (a socket right after a 2xx CONNECT response head). */
  static open(tunnel: net.Socket, timeoutMs = 5000): Promise<TunnelSession> {
    return new Promise<TunnelSession>((resolve, reject) => {
      const socket = tls.connect({ socket: tunnel, rejectUnauthorized: false });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`TLS over the tunnel did not finish its handshake within ${timeoutMs} ms`));
      }, timeoutMs);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(`TLS over the tunnel: ${err.message}`, { cause: err }));
      };
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new TunnelSession(socket));
      });
    });
  }

  /** Why the session ended, or undefined while it is open. */
  get closed(): string | undefined {
    return this.closedBy;
  }

  get peerSubjectCN(): string | undefined {
    const cn = this.socket.getPeerCertificate().subject?.CN;
    return Array.isArray(cn) ? cn.join(',') : cn;
  }

  /**
   * One request on the session; rejects if the session ends first or the answer is late. Callers that
   * overlap (a background load and a foreground check) are served one after the other; the deadline
   * counts from the request's own turn.
   */
  request(method: string, path: string, timeoutMs = 5000): Promise<SessionResponse> {
    const mine = this.turn.then(() => this.exchange(method, path, timeoutMs));
    // A failed exchange may leave its answer arriving later, where the next caller would take it for
    // its own: the session is over after any failure.
    this.turn = mine.catch((error: unknown) => {
      this.closedBy ??= `an earlier request failed: ${(error as Error).message}`;
      this.socket.destroy();
    });
    return mine;
  }

  private async exchange(method: string, path: string, timeoutMs: number): Promise<SessionResponse> {
    if (this.closedBy !== undefined) throw new Error(`the tunnel session is over (${this.closedBy})`);
    const deadline = performance.now() + timeoutMs;
    this.socket.write(`${method} ${path} HTTP/1.1\r\nHost: kubelet\r\nConnection: keep-alive\r\n\r\n`);
    let headEnd: number;
    while ((headEnd = this.received.indexOf('\r\n\r\n')) === -1) await this.more(deadline, `${method} ${path}: response head`);
    const head = this.received.subarray(0, headEnd).toString('latin1');
    const match = /^HTTP\/1\.1 (\d{3})/.exec(head);
    if (match === null) throw new Error(`${method} ${path}: malformed response head ${JSON.stringify(head)}`);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (length === null) throw new Error(`${method} ${path}: the response has no Content-Length`);
    const total = headEnd + 4 + Number(length[1]);
    while (this.received.length < total) await this.more(deadline, `${method} ${path}: response body`);
    const body = this.received.subarray(headEnd + 4, total).toString('utf8');
    this.received = this.received.subarray(total);
    this.answered += 1;
    const newline = head.indexOf('\r\n');
    return { status: Number(match[1]), headers: newline === -1 ? '' : head.slice(newline + 2), body };
  }

  close(): void {
    this.socket.destroy();
  }

  // Waits for more bytes, the end of the session or the deadline, whichever comes first.
  private async more(deadline: number, what: string): Promise<void> {
    if (this.closedBy !== undefined) throw new Error(`${what}: the tunnel session ended (${this.closedBy})`);
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`${what}: nothing within the deadline`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }
}
