// Tests of the harness itself, without Envoy: the stand-in kubelet, the CONNECT client against a fake
// proxy, waitFor and process cleanup. If these fail, integration test failures mean nothing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  blobChunks,
  blobSha256,
  envoyBinary,
  freePort,
  getThroughProxy,
  httpsThroughTunnel,
  openConnect,
  parseStats,
  ProcessSet,
  startStandInKubelet,
  waitFor,
  type StandInKubelet,
} from './index.js';

const MiB = 1024 * 1024;
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

async function kubelet(t: TestContext, node: string): Promise<StandInKubelet> {
  const k = await startStandInKubelet({ node, port: 0 });
  t.after(() => k.close());
  return k;
}

// A plain TCP connection to the kubelet: the degenerate tunnel, to test the kubelet without a proxy.
async function directSocket(t: TestContext, port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  return socket;
}

interface FakeProxy {
  port: number;
  /** The request heads received, verbatim (including the final CRLF CRLF). */
  heads: string[];
}

/**
 * A minimal CONNECT proxy: reads the request head, writes `response`, then (when `upstreamPort` is given)
 * pipes the connection to 127.0.0.1:<upstreamPort>; otherwise closes after answering, or never answers
 * when `response` is undefined.
 */
async function fakeProxy(t: TestContext, response: string | undefined, upstreamPort?: number): Promise<FakeProxy> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = net.createServer((client) => {
    track(client);
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return;
      client.off('data', onData);
      client.pause();
      heads.push(received.subarray(0, end + 4).toString('latin1'));
      const rest = received.subarray(end + 4);
      if (response === undefined) return;
      if (upstreamPort === undefined) {
        client.end(response);
        return;
      }
      const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort }, () => {
        client.write(response);
        if (rest.length > 0) upstream.write(rest);
        client.pipe(upstream).pipe(client);
      });
      track(upstream);
      upstream.on('close', () => client.destroy());
      client.on('close', () => upstream.destroy());
    };
    client.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { port: address.port, heads };
}

// Alive means running: a zombie (exited, not yet reaped by whoever inherited it) counts as dead.
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

async function* async<T>(items: Iterable<T>): AsyncIterable<T> {
  yield* items;
}

describe('stand-in kubelet', () => {
  test('GET / names the node, and the certificate is P-256 with CN=kubelet-<node>', async (t) => {
    const k = await kubelet(t, 'node-a');
    const res = await httpsThroughTunnel(await directSocket(t, k.port), { method: 'GET', path: '/' });
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'kubelet node-a\n');
    assert.equal(res.peerSubjectCN, 'kubelet-node-a');
    const cert = new X509Certificate(k.certPem);
    assert.equal(cert.subject, 'CN=kubelet-node-a');
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  });

  test('POST /sha256 hashes an 8 MiB upload, sent whole or streamed', async (t) => {
    const k = await kubelet(t, 'node-a');
    const upload = randomBytes(8 * MiB);
    const whole = await httpsThroughTunnel(await directSocket(t, k.port), { method: 'POST', path: '/sha256', body: upload });
    assert.equal(whole.status, 200);
    assert.equal(whole.body.toString(), createHash('sha256').update(upload).digest('hex'));
    assert.equal(whole.headers['x-received-bytes'], String(8 * MiB));

    const size = 8 * MiB + 7;
    const streamed = await httpsThroughTunnel(await directSocket(t, k.port), {
      method: 'POST',
      path: '/sha256',
      body: async(blobChunks(size, 'up')),
    });
    assert.equal(streamed.body.toString(), blobSha256(size, 'up'));
    assert.equal(streamed.headers['x-received-bytes'], String(size));
  });

  test('GET /blob streams 8 MiB whose sha256 is blobSha256(size, seed)', async (t) => {
    const k = await kubelet(t, 'node-a');
    const res = await httpsThroughTunnel(await directSocket(t, k.port), {
      method: 'GET',
      path: `/blob?size=${8 * MiB}&seed=s1`,
      keepBody: false,
    });
    assert.equal(res.status, 200);
    assert.equal(res.bytes, 8 * MiB);
    assert.equal(res.body.length, 0);
    assert.equal(res.sha256, blobSha256(8 * MiB, 's1'));
  });

  test('blobChunks is deterministic, exact in size and seed-dependent', () => {
    const size = 3 * 64 * 1024 + 5;
    const chunks = [...blobChunks(size, 'x')];
    assert.equal(chunks.reduce((n, c) => n + c.length, 0), size);
    assert.deepEqual(Buffer.concat(chunks), Buffer.concat([...blobChunks(size, 'x')]));
    assert.notEqual(blobSha256(size, 'x'), blobSha256(size, 'y'));
    assert.equal(blobSha256(0, 'x'), createHash('sha256').digest('hex'));
    assert.throws(() => [...blobChunks(-1, 'x')], RangeError);
  });

  test('unknown paths get 404, bad blob sizes 400', async (t) => {
    const k = await kubelet(t, 'node-a');
    const missing = await httpsThroughTunnel(await directSocket(t, k.port), { method: 'GET', path: '/pods' });
    assert.equal(missing.status, 404);
    const bad = await httpsThroughTunnel(await directSocket(t, k.port), { method: 'GET', path: '/blob?size=-3' });
    assert.equal(bad.status, 400);
  });
});

describe('CONNECT client', () => {
  test('openConnect sends exactly the egress dialer request and reaches the kubelet', async (t) => {
    const k = await kubelet(t, 'node-b');
    const proxy = await fakeProxy(t, 'HTTP/1.1 200 OK\r\n\r\n', k.port);
    const target = `127.0.0.1:${k.port}`;
    const tunnel = await openConnect({ proxyHost: '127.0.0.1', proxyPort: proxy.port, target });
    t.after(() => tunnel.socket.destroy());
    assert.equal(tunnel.status, 200);
    assert.equal(tunnel.statusLine, 'HTTP/1.1 200 OK');
    assert.equal(tunnel.headers, '');
    assert.ok(tunnel.elapsedMs >= 0 && tunnel.elapsedMs < 5000);
    assert.deepEqual(proxy.heads, [`CONNECT ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`]);

    const res = await httpsThroughTunnel(tunnel.socket, { method: 'GET', path: '/' });
    assert.equal(res.body.toString(), 'kubelet node-b\n');
    assert.equal(res.peerSubjectCN, 'kubelet-node-b');

    const again = await getThroughProxy({ host: '127.0.0.1', port: proxy.port }, target, '/');
    assert.equal(again.body.toString(), 'kubelet node-b\n');
    assert.equal(proxy.heads.length, 2);
  });

  test('bytes after the response head stay on the socket for the caller', async (t) => {
    const proxy = await fakeProxy(t, 'HTTP/1.1 200 Connection established\r\nX-Test: 1\r\n\r\nhello');
    const tunnel = await openConnect({ proxyHost: '127.0.0.1', proxyPort: proxy.port, target: 'x:1', hostHeader: 'h' });
    t.after(() => tunnel.socket.destroy());
    assert.equal(tunnel.headers, 'X-Test: 1');
    assert.deepEqual(proxy.heads, ['CONNECT x:1 HTTP/1.1\r\nHost: h\r\n\r\n']);
    const chunks: Buffer[] = [];
    for await (const chunk of tunnel.socket as AsyncIterable<Buffer>) chunks.push(chunk);
    assert.equal(Buffer.concat(chunks).toString(), 'hello');
  });

  test('a refused CONNECT resolves with the status and a destroyed socket', async (t) => {
    const proxy = await fakeProxy(t, 'HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n');
    const tunnel = await openConnect({ proxyHost: '127.0.0.1', proxyPort: proxy.port, target: 'nowhere:10250' });
    assert.equal(tunnel.status, 503);
    assert.equal(tunnel.statusLine, 'HTTP/1.1 503 Service Unavailable');
    assert.equal(tunnel.socket.destroyed, true);
    await assert.rejects(getThroughProxy({ host: '127.0.0.1', port: proxy.port }, 'nowhere:10250', '/'), /refused: HTTP\/1.1 503/);
  });

  test('a proxy that never answers times out; a closed port fails fast', async (t) => {
    const silent = await fakeProxy(t, undefined);
    await assert.rejects(
      openConnect({ proxyHost: '127.0.0.1', proxyPort: silent.port, target: 'a:1', timeoutMs: 200 }),
      /CONNECT a:1 via 127\.0\.0\.1:\d+: no complete response head within 200 ms/,
    );
    const closed = await freePort();
    await assert.rejects(openConnect({ proxyHost: '127.0.0.1', proxyPort: closed, target: 'a:1' }), /ECONNREFUSED/);
  });
});

describe('waitFor', () => {
  test('resolves with the first truthy probe value', async () => {
    let calls = 0;
    const value = await waitFor('the third call', () => (++calls >= 3 ? `call ${calls}` : false), { intervalMs: 1 });
    assert.equal(value, 'call 3');
  });

  test('times out with a message naming what, the timeout and the last probe error', async () => {
    await assert.rejects(
      waitFor('the moon to turn blue', () => false, { timeoutMs: 150, intervalMs: 10 }),
      (err: Error) => {
        assert.match(err.message, /timed out after 150 ms .*waiting for the moon to turn blue/);
        return true;
      },
    );
    let n = 0;
    await assert.rejects(
      waitFor('a port', () => {
        throw new Error(`refused #${++n}`);
      }, { timeoutMs: 100, intervalMs: 10 }),
      (err: Error) => {
        assert.match(err.message, /waiting for a port; last probe error: refused #\d+/);
        assert.equal(err.message.includes(`refused #${n}`), true);
        return true;
      },
    );
  });

  test('an abort stops the wait with the abort reason', async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(new Error('the process died')), 30);
    const started = performance.now();
    await assert.rejects(waitFor('never', () => false, { timeoutMs: 5000, signal: abort.signal }), /^Error: the process died$/);
    assert.ok(performance.now() - started < 1000);
  });

  test('a probe that never settles does not stall the wait', async () => {
    const started = performance.now();
    await assert.rejects(
      waitFor('a hung probe', () => new Promise<boolean>(() => undefined), { timeoutMs: 100 }),
      /a hung probe; last probe error: the probe was still pending at the deadline/,
    );
    assert.ok(performance.now() - started < 2000);
  });
});

describe('processes', () => {
  test('ProcessSet.stopAll kills the whole process group', async (t) => {
    const set = new ProcessSet();
    t.after(() => set.stopAll('SIGKILL'));
    const shell = await set.start({ name: 'sleeper', command: 'sh', args: ['-c', 'sleep 100 & echo "bg $!"; wait'] });
    const bgPid = await waitFor('the background sleep pid', () => {
      const m = /^bg (\d+)$/m.exec(shell.logTail());
      return m === null ? undefined : Number(m[1]);
    });
    assert.ok(isAlive(shell.pid) && isAlive(bgPid));
    assert.match(set.describeFailure(), /----- sleeper \(pid \d+, running\) log: .*sleeper\.log -----\nbg \d+/);

    await set.stopAll();
    assert.deepEqual(shell.exitInfo(), { code: null, signal: 'SIGTERM' });
    await waitFor('the background sleep to die with its group', () => !isAlive(bgPid), { timeoutMs: 5000 });
    assert.match(readFileSync(shell.logFile, 'utf8'), /^\$ sh -c/);
  });

  test('stop escalates to SIGKILL when SIGTERM is ignored', async (t) => {
    const set = new ProcessSet();
    t.after(() => set.stopAll('SIGKILL'));
    const stubborn = await set.start({ name: 'stubborn', command: 'sh', args: ['-c', 'trap "" TERM; echo ready; sleep 100'] });
    await waitFor('the TERM trap', () => stubborn.logTail().includes('ready'));
    const started = performance.now();
    await stubborn.stop('SIGTERM', 200);
    assert.equal((await stubborn.exited).signal, 'SIGKILL');
    assert.ok(performance.now() - started < 3000);
  });

  test('an unstartable command rejects', async () => {
    const set = new ProcessSet();
    await assert.rejects(set.start({ name: 'ghost', command: '/nonexistent/ghost', args: [] }), /cannot start ghost.*ENOENT/);
    assert.equal(set.handles.length, 0);
  });

  for (const how of ['exit', 'SIGTERM'] as const) {
    test(`children do not outlive a runner that ends by ${how}`, async (t) => {
      const processesUrl = new URL('./processes.ts', import.meta.url).href;
      const script = [
        `const { startProcess } = await import(${JSON.stringify(processesUrl)});`,
        `const h = await startProcess({ name: 'orphan', command: 'sleep', args: ['100'] });`,
        `process.stdout.write(h.pid + '\\n');`,
        how === 'exit' ? 'process.exit(0);' : 'setInterval(() => undefined, 1000);',
      ].join('\n');
      const runner = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const runnerExit = once(runner, 'exit');
      t.after(() => runner.kill('SIGKILL'));
      let out = '';
      runner.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      const orphan = await waitFor('the orphan pid', () => (/^\d+\n/.test(out) ? Number(out) : undefined));
      if (how === 'SIGTERM') runner.kill('SIGTERM');
      const [code, signal] = (await runnerExit) as [number | null, NodeJS.Signals | null];
      assert.deepEqual({ code, signal }, how === 'exit' ? { code: 0, signal: null } : { code: null, signal: 'SIGTERM' });
      await waitFor(`sleep ${orphan} to be killed`, () => !isAlive(orphan), { timeoutMs: 5000 });
    });
  }
});

describe('envoy helpers (no Envoy process)', () => {
  test('parseStats keeps numeric name: value lines only', () => {
    const stats = parseStats(
      [
        'cluster.kubelet.upstream_cx_total: 3',
        'server.memory_allocated: 1234567',
        'server.version: 1234',
        'http.admin.downstream_rq_time: P0(nan,0) P25(nan,1)',
        'server.hot_restart_epoch: 0',
        'tls_inspector.alpn: "h2"',
        '',
      ].join('\n'),
    );
    assert.deepEqual(
      stats,
      new Map([
        ['cluster.kubelet.upstream_cx_total', 3],
        ['server.memory_allocated', 1234567],
        ['server.version', 1234],
        ['server.hot_restart_epoch', 0],
      ]),
    );
  });

  test('envoyBinary honours ENVOY_BIN and says how to fix a missing binary', (t) => {
    const saved = process.env.ENVOY_BIN;
    t.after(() => {
      if (saved === undefined) delete process.env.ENVOY_BIN;
      else process.env.ENVOY_BIN = saved;
    });
    process.env.ENVOY_BIN = '/nonexistent/envoy';
    assert.throws(() => envoyBinary(), /ENVOY_BIN points to \/nonexistent\/envoy.*run make tools/);
  });
});
