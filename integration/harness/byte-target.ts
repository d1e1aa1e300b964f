// A raw TCP endpoint for data-path tests and benchmarks, fast enough that the proxy, not the endpoint, is
// what a measurement sees. Commands, one line each:
//   SEND n    send n bytes, then close (the kubelet closing first, as at the end of an exec or a log)
//   STREAM n  send n bytes and keep the connection until the client closes it (the client closing first)
//   SINK n    read exactly n bytes, answer "OK n" if every byte was the pattern's (else "BAD at <offset>"),
//             then close
//   REPLY n   send n bytes and wait for the next command (request/response on an open connection)
// The bytes are a fixed 1 MiB pattern repeated, so both ends know them without generating anything, and a
// receiver checks every byte against it at memory speed (no hashing on the hot path).
import { createHash } from 'node:crypto';
import net from 'node:net';
import { blobChunks } from './kubelet.js';

const PATTERN = Buffer.concat([...blobChunks(1024 * 1024, 'byte-target')]);
const MAX_COMMAND_BYTES = 64;

export interface ByteTarget {
  readonly port: number;
  close(): Promise<void>;
}

/** The bytes `SEND size` delivers, in pieces of at most 1 MiB (views, not copies). */
export function* patternBytes(size: number): Generator<Buffer> {
  for (let left = size; left > 0; left -= PATTERN.length) yield PATTERN.subarray(0, Math.min(left, PATTERN.length));
}

const digests = new Map<number, string>();

/** The hex sha256 of `SEND size`'s bytes (cached: tests ask for the same sizes again and again). */
export function patternSha256(size: number): string {
  let digest = digests.get(size);
  if (digest === undefined) {
    const hash = createHash('sha256');
    for (const piece of patternBytes(size)) hash.update(piece);
    digests.set(size, (digest = hash.digest('hex')));
  }
  return digest;
}

export async function startByteTarget(host = '127.0.0.1', port = 0): Promise<ByteTarget> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    // The client closing its side ends the exchange (STREAM and REPLY wait for it).
    socket.on('end', () => socket.writableEnded || socket.end());
    serve(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function serve(socket: net.Socket, pending: Buffer = Buffer.alloc(0)): void {
  let command = pending;
  const onData = (chunk: Buffer): void => {
    command = command.length === 0 ? chunk : Buffer.concat([command, chunk]);
    const newline = command.indexOf(10);
    if (newline === -1) {
      if (command.length > MAX_COMMAND_BYTES) socket.destroy();
      return;
    }
    // Paused until the next reader is in place: bytes after the command are never read by nobody.
    socket.pause();
    socket.off('data', onData);
    const rest = command.subarray(newline + 1);
    const match = /^(SEND|STREAM|SINK|REPLY) (\d+)$/.exec(command.subarray(0, newline).toString('latin1'));
    if (match === null) {
      socket.end('ERR want SEND, STREAM, SINK or REPLY and a byte count\n');
      return;
    }
    const size = Number(match[2]);
    if (match[1] === 'SINK') {
      sink(socket, size, rest);
      return;
    }
    // Whatever the client sends while we send is read and dropped, as a kubelet drains an exec's stdin;
    // only REPLY reads a next command afterwards.
    const drop = (): void => undefined;
    if (match[1] !== 'REPLY') socket.on('data', drop).resume();
    send(socket, size, () => {
      if (match[1] === 'SEND') socket.end();
      else if (match[1] === 'REPLY') serve(socket, rest);
    });
  };
  socket.on('data', onData).resume();
  if (pending.length > 0) onData(Buffer.alloc(0));
}

/** Writes `size` pattern bytes with backpressure, then calls `done`. */
function send(socket: net.Socket, size: number, done: () => void): void {
  writeAll(socket, patternBytes(size), done);
}

/** Reads exactly `size` bytes, checking each against the pattern; answers and closes. */
function sink(socket: net.Socket, size: number, first: Buffer): void {
  const check = new PatternCheck();
  let left = size;
  const take = (chunk: Buffer): void => {
    if (left <= 0) return;
    const piece = chunk.length > left ? chunk.subarray(0, left) : chunk;
    check.update(piece);
    left -= piece.length;
    if (left === 0) socket.end(check.mismatchAt === undefined ? `OK ${size}\n` : `BAD at ${check.mismatchAt}\n`);
  };
  socket.on('data', take).resume();
  if (size === 0) socket.end(`OK 0\n`);
  else take(first);
}

/** Checks a stream against the pattern, byte for byte, as it arrives. */
export class PatternCheck {
  private offset = 0;
  /** The first offset whose byte differed from the pattern, if any. */
  mismatchAt: number | undefined;

  get bytes(): number {
    return this.offset;
  }

  update(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const inPattern = this.offset % PATTERN.length;
      const n = Math.min(chunk.length - at, PATTERN.length - inPattern);
      if (this.mismatchAt === undefined && PATTERN.compare(chunk, at, at + n, inPattern, inPattern + n) !== 0) {
        for (let i = 0; i < n; i++) {
          if (chunk[at + i] !== PATTERN[inPattern + i]) {
            this.mismatchAt = this.offset + i;
            break;
          }
        }
      }
      at += n;
      this.offset += n;
    }
  }
}

export interface ReadResult {
  readonly bytes: number;
  readonly sha256: string;
  /** How the stream ended: 'end' for a FIN, otherwise the socket error's code. */
  readonly ending: string;
  /** Milliseconds from the last byte to the end of the stream. */
  readonly msToEnd: number;
  /** Milliseconds from the command to the end of the stream. */
  readonly msTotal: number;
  /** The first bytes received (up to 128), as text: the answer to SINK. */
  readonly head: string;
}

/** Sends `command` on an open stream (a tunnel or a direct connection) and reads until it ends. */
export function runCommand(socket: net.Socket, command: string, upload?: Iterable<Buffer>): Promise<ReadResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    let last = started;
    let bytes = 0;
    let head = '';
    const hash = createHash('sha256');
    let done = false;
    const finish = (ending: string): void => {
      if (done) return;
      done = true;
      const now = performance.now();
      resolve({ bytes, sha256: hash.digest('hex'), ending, msToEnd: now - last, msTotal: now - started, head });
      socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      if (head.length < 128) head += chunk.subarray(0, 128 - head.length).toString('latin1');
      bytes += chunk.length;
      hash.update(chunk);
      last = performance.now();
    });
    socket.on('end', () => finish('end'));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    socket.on('close', () => finish('close without end'));
    socket.resume();
    socket.write(`${command}\n`);
    if (upload !== undefined) writeAll(socket, upload[Symbol.iterator]());
  });
}

/** Writes every piece, waiting for 'drain' whenever the socket's buffer is full; then calls `done`. */
export function writeAll(socket: net.Socket, pieces: Iterator<Buffer>, done?: () => void): void {
  for (let next = pieces.next(); !next.done; next = pieces.next()) {
    if (!socket.write(next.value)) {
      socket.once('drain', () => writeAll(socket, pieces, done));
      return;
    }
  }
  done?.();
}
