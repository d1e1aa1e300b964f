// The terminator against a real HTTP/2 client (node:http2, as Envoy's upstream would speak) and real
// TCP targets on loopback: half-close carried both ways, aborts surfaced as resets, refusals answered.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { terminatorRegistry } from './metrics.js';
import { parseAuthority, startTerminator, type Terminator } from './terminator.js';

const { NGHTTP2_CONNECT_ERROR } = http2.constants;

/** A TCP server whose behaviour per connection is given by the test. */
async function target(onConnection: (socket: net.Socket) => void): Promise<{ port: number; sockets: Set<net.Socket>; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

interface Exchange {
  status: number;
  body: Buffer;
  /** How the response ended: END_STREAM ('end') or a reset with its code. */
  ending: { kind: 'end' } | { kind: 'reset'; code: number };
}

/** CONNECT through the terminator, send `upload` (then END_STREAM unless keepOpen), read to the end. */
function connect(session: http2.ClientHttp2Session, authority: string, upload: Buffer, keepOpen = false): Promise<Exchange> {
  return new Promise((resolve) => {
    const stream = session.request({ ':method': 'CONNECT', ':authority': authority }, { endStream: false });
    const chunks: Buffer[] = [];
    let status = 0;
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', () => undefined);
    stream.on('close', () => {
      const body = Buffer.concat(chunks);
      if (stream.rstCode !== undefined && stream.rstCode !== 0) resolve({ status, body, ending: { kind: 'reset', code: stream.rstCode } });
      else resolve({ status, body, ending: { kind: 'end' } });
    });
    stream.on('end', () => {
      // The response ended; close our side the way Envoy's cloud does once it has everything. Node also
      // reports 'end' just before a reset that follows it, so give a reset the chance to arrive first.
      if (keepOpen) setTimeout(() => stream.destroyed || stream.close(), 20);
    });
    stream.write(upload);
    if (!keepOpen) stream.end();
  });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const execFileAsync = promisify(execFile);

/** Polls `condition` until it holds; throws after `timeoutMs`. */
async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('connect-terminator', () => {
  let dir: string;
  let terminator: Terminator;
  let session: http2.ClientHttp2Session;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edge-tunnel-terminator-'));
    terminator = await startTerminator({ listen: join(dir, 't.sock'), log: pino({ level: 'silent' }), dialTimeoutMs: 2000 });
    session = http2.connect('http://localhost', { createConnection: () => net.connect(join(dir, 't.sock')) });
  });
  after(async () => {
    session.close();
    await terminator.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('parses CONNECT authorities, IPv6 in brackets, and refuses anything else', () => {
    assert.deepEqual(parseAuthority('127.0.0.1:10250'), { host: '127.0.0.1', port: 10250 });
    assert.deepEqual(parseAuthority('[fd00::1]:8080'), { host: 'fd00::1', port: 8080 });
    assert.deepEqual(parseAuthority('node-a:1'), { host: 'node-a', port: 1 });
    for (const bad of [undefined, '', 'host', 'host:0', 'host:70000', 'fd00::1:80', '[x]:1:2']) assert.equal(parseAuthority(bad), undefined, String(bad));
  });

  it('passes every byte of a target that writes and then closes first, ending with END_STREAM, not a reset', async () => {
    const payload = Buffer.from(Buffer.alloc(24 * 1024 * 1024 + 17).map((_, i) => (i * 31) & 255));
    const server = await target((socket) => socket.end(payload));
    try {
      // Keep the request side open, as kube-apiserver does: the target's FIN alone must end the response.
      const result = await connect(session, `127.0.0.1:${server.port}`, Buffer.alloc(0), true);
      assert.equal(result.status, 200);
      assert.deepEqual(result.ending, { kind: 'end' });
      assert.equal(result.body.length, payload.length);
      assert.equal(sha(result.body), sha(payload));
    } finally {
      await server.close();
    }
  });

  it('carries the upload and its end to the target as a FIN, then the reply back', async () => {
    const upload = Buffer.alloc(5 * 1024 * 1024, 3);
    const server = await target((socket) => {
      const hash = createHash('sha256');
      socket.on('data', (c: Buffer) => hash.update(c));
      socket.on('end', () => socket.end(hash.digest('hex')));
    });
    try {
      const result = await connect(session, `127.0.0.1:${server.port}`, upload);
      assert.equal(result.status, 200);
      assert.deepEqual(result.ending, { kind: 'end' });
      assert.equal(result.body.toString(), sha(upload));
    } finally {
      await server.close();
    }
  });

  it('resets the stream with CONNECT_ERROR when the target aborts (RST) before its FIN', async () => {
    // A reset is seen reliably while data flows towards the target; a RST on an idle socket can read as
    // a plain EOF in Node (the error is consumed by the poller), which is why the test uploads.
    const server = await target((socket) => {
      socket.write(Buffer.alloc(1024));
      socket.once('data', () => socket.resetAndDestroy());
    });
    try {
      const result = await connect(session, `127.0.0.1:${server.port}`, Buffer.alloc(64 * 1024), true);
      assert.equal(result.status, 200);
      assert.deepEqual(result.ending, { kind: 'reset', code: NGHTTP2_CONNECT_ERROR });
      assert.ok(terminator.stats.targetAborted >= 1);
    } finally {
      await server.close();
    }
  });

  it('answers 502 when the target refuses the connection and 405 to anything but CONNECT', async () => {
    const server = await target(() => undefined);
    const port = server.port;
    await server.close();
    const refused = await connect(session, `127.0.0.1:${port}`, Buffer.alloc(0));
    assert.equal(refused.status, 502);
    const get = await new Promise<number>((resolve) => {
      const stream = session.request({ ':method': 'GET', ':path': '/' });
      stream.on('response', (h) => resolve(Number(h[':status'])));
      stream.end();
    });
    assert.equal(get, 405);
  });

  it('keeps a finished target stream open for the peer to close, dropping uploads that come after', async () => {
    const server = await target((socket) => socket.end('done'));
    try {
      const result = await new Promise<{ body: string; ending: string }>((resolve) => {
        const stream = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${server.port}` }, { endStream: false });
        let body = '';
        stream.on('data', (c: Buffer) => (body += c.toString()));
        stream.on('error', () => undefined);
        // After the response ended, keep sending: the terminator must not reset (that could cost Envoy
        // the frames it still queues), it reads and drops until we end our side.
        stream.on('end', () => {
          stream.write(Buffer.alloc(256 * 1024));
          setTimeout(() => stream.end(), 50);
        });
        stream.on('close', () => resolve({ body, ending: stream.rstCode ? `reset ${stream.rstCode}` : 'end' }));
      });
      assert.deepEqual(result, { body: 'done', ending: 'end' });
    } finally {
      await server.close();
    }
  });

  it("passes the client's END_STREAM on as a FIN, but a reset mid-upload as a reset (read from the target's TCP state)", async () => {
    // A target that reads and never closes: after a FIN its socket sits in CLOSE-WAIT, after a RST it is
    // gone. The kernel's state says which one arrived (Node itself may read a reset as a plain EOF).
    const server = await target((socket) => socket.on('data', () => undefined));
    const closeWait = async (): Promise<boolean> => {
      const { stdout } = await execFileAsync('ss', ['-Htan', 'state', 'close-wait', `( sport = :${server.port} )`]);
      return stdout.trim() !== '';
    };
    const run = async (finish: (stream: http2.ClientHttp2Stream) => void): Promise<boolean> => {
      const before = terminator.stats.streams;
      const stream = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${server.port}` }, { endStream: false });
      stream.on('error', () => undefined);
      await new Promise((resolve) => stream.once('response', resolve));
      await new Promise<void>((resolve) => stream.write(Buffer.alloc(300 * 1024), () => resolve()));
      finish(stream);
      await waitUntil(async () => terminator.stats.streams > before && (terminator.stats.active === 0 || (await closeWait())), 5000);
      return closeWait();
    };
    try {
      assert.equal(await run((stream) => stream.end()), true, 'END_STREAM reached the target as a FIN');
      for (const socket of server.sockets) socket.destroy();
      await waitUntil(async () => !(await closeWait()), 5000);
      // destroy() sends RST_STREAM alone, as Envoy does when its client goes away.
      assert.equal(await run((stream) => stream.destroy()), false, 'a reset must not reach the target as a FIN');
    } finally {
      await server.close();
    }
  });

  it('reports what it did as Prometheus metrics', async () => {
    const text = await terminatorRegistry(terminator.stats).metrics();
    const value = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
    assert.equal(value('connect_terminator_streams_total'), terminator.stats.streams);
    assert.ok(value('connect_terminator_streams_total') >= 4, text);
    assert.ok(value('connect_terminator_target_closed_first_total') >= 1, text);
    assert.ok(value('connect_terminator_target_aborted_total') >= 1, text);
    assert.ok(value('connect_terminator_refused_total') >= 2, text);
  });
});
