// A stand-in kubelet: what the edge Envoy forwards tunnelled TCP to. It speaks HTTPS with its own
// self-signed certificate (as a real kubelet's serving certificate is to the tunnel: opaque bytes), names
// its node in the body and in the certificate so a test can tell which edge it reached, and can hash an
// upload and generate a download of any size so tests can check large transfers end to end.
import { execFile } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { ProcessHandle, ProcessSet } from './processes.js';
import { waitFor } from './wait.js';

const execFileAsync = promisify(execFile);

export interface StandInKubeletOptions {
  node: string;
  /** 0 (the default) lets the kernel pick; the chosen port is in the result. */
  port?: number;
  host?: string;
}

export interface StandInKubelet {
  readonly node: string;
  readonly host: string;
  readonly port: number;
  /** The self-signed serving certificate (CN=kubelet-<node>). */
  readonly certPem: string;
  close(): Promise<void>;
}

const BLOB_CHUNK = 64 * 1024;
// Bounds what a /blob request can ask for, so a typo in a test cannot make the server stream for minutes.
const MAX_BLOB_BYTES = 4 * 1024 * 1024 * 1024;

/**
 * The bytes of /blob: AES-256-CTR keystream under the key sha256(seed), in chunks of 64 KiB. Deterministic
 * for (size, seed), unrelated across seeds, and generated at memory speed (a per-32-byte sha256 counter
 * would take seconds for 64 MiB).
 */
export function* blobChunks(size: number, seed: string): Generator<Buffer> {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`blob size must be a non-negative integer, got ${size}`);
  const key = createHash('sha256').update(seed, 'utf8').digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(BLOB_CHUNK);
  for (let left = size; left > 0; left -= BLOB_CHUNK) {
    yield cipher.update(left >= BLOB_CHUNK ? zeros : zeros.subarray(0, left));
  }
}

/** The hex sha256 of the bytes /blob?size=<size>&seed=<seed> serves. */
export function blobSha256(size: number, seed: string): string {
  const hash = createHash('sha256');
  for (const chunk of blobChunks(size, seed)) hash.update(chunk);
  return hash.digest('hex');
}

/** A self-signed ECDSA P-256 certificate, valid one day, made by the openssl CLI in a throwaway directory. */
async function selfSignedCertificate(commonName: string): Promise<{ keyPem: string; certPem: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'edge-tunnel-kubelet-'));
  try {
    const keyFile = path.join(dir, 'key.pem');
    const certFile = path.join(dir, 'cert.pem');
    await execFileAsync('openssl', [
      'req', '-x509', '-nodes',
      '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-keyout', keyFile, '-out', certFile,
      '-days', '1',
      '-subj', `/CN=${commonName}`,
      '-addext', `subjectAltName=DNS:${commonName},IP:127.0.0.1`,
    ]);
    return { keyPem: await readFile(keyFile, 'utf8'), certPem: await readFile(certFile, 'utf8') };
  } catch (err) {
    throw new Error(`openssl could not create a certificate for ${commonName}: ${(err as Error).message}`, { cause: err });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function startStandInKubelet(opts: StandInKubeletOptions): Promise<StandInKubelet> {
  const host = opts.host ?? '127.0.0.1';
  const { keyPem, certPem } = await selfSignedCertificate(`kubelet-${opts.node}`);
  const server = https.createServer({ key: keyPem, cert: certPem }, (req, res) => {
    handle(opts.node, req, res).catch((err: unknown) => {
      // The client went away mid-stream or similar: nothing to answer any more, just drop the exchange.
      res.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: opts.port ?? 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('stand-in kubelet has no TCP address');
  return {
    node: opts.node,
    host,
    port: address.port,
    certPem,
    close: async () => {
      // Tunnels under test may hold connections open; a test's cleanup must not wait for them.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

async function handle(node: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://kubelet.invalid');
  if (req.method === 'GET' && url.pathname === '/') {
    return reply(res, 200, `kubelet ${node}\n`);
  }
  if (req.method === 'POST' && url.pathname === '/sha256') {
    // Streamed: the upload is never held in memory, so the size is bounded only by the test's patience.
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytes += chunk.length;
    }
    res.setHeader('x-received-bytes', String(bytes));
    return reply(res, 200, hash.digest('hex'));
  }
  if (req.method === 'GET' && url.pathname === '/blob') {
    const size = Number(url.searchParams.get('size'));
    const seed = url.searchParams.get('seed') ?? '';
    if (!Number.isSafeInteger(size) || size < 0 || size > MAX_BLOB_BYTES) {
      return reply(res, 400, `size must be an integer in [0, ${MAX_BLOB_BYTES}]\n`);
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    await pipeline(Readable.from(blobChunks(size, seed)), res);
    return;
  }
  req.resume();
  return reply(res, 404, `no ${req.method} ${url.pathname} on the stand-in kubelet\n`);
}

function reply(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * A stand-in kubelet as a process of its own under `prefix` (`ip netns exec <ns>`: inside a network
 * namespace, where an in-process server cannot go). Resolves with its port once it listens.
 */
export async function startStandInKubeletProcess(
  processes: ProcessSet,
  opts: { name: string; node: string; host: string; port: number; prefix: readonly string[] },
): Promise<{ handle: ProcessHandle; port: number }> {
  const [command, ...prefixArgs] = [...opts.prefix, process.execPath];
  const handle = await processes.start({
    name: opts.name,
    command,
    args: [...prefixArgs, '--import', 'tsx', path.join(import.meta.dirname, 'stand-in-kubelet-main.ts'), '--node', opts.node, '--host', opts.host, '--port', String(opts.port)],
    cwd: path.join(import.meta.dirname, '..', '..'),
  });
  const port = await waitFor(`${opts.name} listening`, () => {
    if (handle.exitInfo() !== undefined) throw new Error(`${opts.name} exited:\n${handle.logTail(20)}`);
    const match = /listening on \S+:(\d+)/.exec(handle.logTail(5));
    return match ? Number(match[1]) : undefined;
  }, { timeoutMs: 20_000, intervalMs: 50 });
  return { handle, port };
}
