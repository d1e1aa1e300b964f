// Weak links between edge and cloud: the edges dial the cloud's tunnel listener through Toxiproxy (where a
// load balancer would sit: `--tunnel-dial` names Toxiproxy, `--tunnel-listen` stays on the cloud Envoy),
// and each case degrades that link: latency, a bandwidth cap, a cut, resets, and a half-dead link that
// silently drops data. Mutual TLS runs through Toxiproxy untouched (it forwards TCP bytes). The figures
// measured are printed as test diagnostics (`--test-reporter=spec` shows them).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import { after, afterEach, before, describe } from 'node:test';
import {
  EnvoyAdmin,
  ProcessSet,
  blobChunks,
  blobSha256,
  delay,
  freePort,
  httpsThroughTunnel,
  listenPort,
  openConnect,
  startToxiproxy,
  waitFor,
  type ConnectResult,
  type ToxiproxyInstance,
} from './harness/index.js';
import { DEFAULT_SETTINGS } from '../xds/model/settings.js';
import { patternBytes, patternSha256, runCommand, startByteTarget, type ByteTarget, type ReadResult } from './harness/byte-target.js';
import { Topology, stepsWithLogs } from './topology.js';

const MiB = 1024 * 1024;
/** The Toxiproxy proxy every edge Envoy dials instead of the cloud's tunnel listener. */
const LINK = 'edge-cloud';
/** The cloud's ping interval on idle tunnels, as the xDS server configures it by default. */
const PING_INTERVAL_MS = DEFAULT_SETTINGS.tunnelPingIntervalSeconds * 1000;
/** Cloud Envoy workers; the topology opens as many tunnels per edge (one per worker when balanced). */
const CLOUD_WORKERS = 2;
/** How soon node-a must be reachable again once a fault is gone (the design: 6–10 s with stock settings). */
const RECOVERY_BOUND_MS = 10_000;

describe('weak edge-cloud links (edges dial the cloud through Toxiproxy; TLS on)', { concurrency: false, timeout: 600_000 }, () => {
  const faults = new ProcessSet();
  let toxiproxy: ToxiproxyInstance;
  let topology: Topology;
  let byteTarget: ByteTarget;

  const step = stepsWithLogs(() => `${faults.describeFailure(20)}\n${topology?.processes.describeFailure() ?? ''}`);
  const target = (): string => `node-a:${topology.kubeletPort('node-a')}`;
  const kubeletAnswers = async (): Promise<boolean> => (await topology.reach('node-a')) === 'kubelet node-a\n';
  /** One CONNECT to node-a as kube-apiserver sends it, the socket closed at once. */
  const connectOnce = async (timeoutMs = 5000): Promise<ConnectResult> => {
    const result = await openConnect({ proxyHost: '127.0.0.1', proxyPort: topology.connectPort, target: target(), proxyTls: topology.clientTls(), timeoutMs });
    result.socket.destroy();
    return result;
  };
  /** CONNECT to node-a, asserting 200, keeping the socket for the tunnelled exchange. */
  const connectKept = async (timeoutMs = 10_000): Promise<ConnectResult> => {
    const result = await openConnect({ proxyHost: '127.0.0.1', proxyPort: topology.connectPort, target: target(), proxyTls: topology.clientTls(), timeoutMs });
    assert.equal(result.status, 200, result.statusLine);
    return result;
  };
  /** Keepalive interval (5 s) + timeout (10 s), with slack for a loaded machine. */
  const KEEPALIVE_BOUND_MS = 25_000;
  const cloudStats = async (pattern: RegExp): Promise<string> => {
    const stats = await topology.cloudAdmin.stats();
    return [...stats].filter(([name]) => pattern.test(name)).map(([name, value]) => `${name}=${value}`).join(' ');
  };
  /**
   * node-a's tunnels as both ends see them: how many cloud workers hold one (idle in the cloud's socket
   * pool or in use), how many are in use (taken by the `edge_tunnels` cluster's HTTP/2 pools, at most one
   * per worker), and how many tunnel connections node-a's Envoy holds.
   */
  const tunnelState = async (): Promise<{ workers: number; holding: number; inUse: number; edgeHolds: number }> => {
    const stats = await topology.cloudAdmin.stats();
    const perWorker = [...stats].filter(([name]) => /^upstream_reverse_connection\.worker_\d+\.total_nodes$/.test(name));
    const edgeHolds = (await new EnvoyAdmin(topology.edgeAdminPort('node-a')).stat('http.tunnel_in.downstream_cx_active')) ?? 0;
    return {
      workers: perWorker.length,
      holding: perWorker.filter(([, value]) => value > 0).length,
      inUse: stats.get('cluster.edge_tunnels.upstream_cx_active') ?? 0,
      edgeHolds,
    };
  };
  const everyWorkerHolds = async (): Promise<boolean> => {
    const state = await tunnelState();
    return state.workers === CLOUD_WORKERS && state.holding === CLOUD_WORKERS;
  };
  /**
   * The cloud's known misplacement (see the report): the edge holds all its tunnels, yet some cloud worker
   * holds none, because the cloud balanced them by how many each worker has ever accepted rather than by
   * how many it holds. CONNECTs handled by that worker get 503 until the edge dials again.
   */
  const misplaced = async (): Promise<string | undefined> => {
    const state = await tunnelState();
    if (state.edgeHolds < CLOUD_WORKERS || state.holding >= CLOUD_WORKERS) return undefined;
    return `node-a's Envoy holds ${state.edgeHolds} tunnels but only ${state.holding} of ${state.workers} cloud workers hold any`;
  };
  /** Cuts the link until the cloud has let go of node-a, then restores it: the edge dials fresh tunnels. */
  const redial = async (): Promise<void> => {
    await toxiproxy.client.disable(LINK);
    await waitFor('the cloud dropping node-a after the cut', async () => (await tunnelState()).holding === 0, { timeoutMs: 5000 });
    await toxiproxy.client.enable(LINK);
  };
  /**
   * Every step starts from here: the link clean and every cloud worker holding a tunnel of node-a. Tunnels
   * misplaced by the cloud (some worker holding none, so about half the CONNECTs to node-a get 503) fail
   * the step with that reason: it is a real outage, not something to dial around.
   */
  const settle = async (): Promise<void> => {
    try {
      await waitFor('every cloud worker holding a tunnel of node-a, and node-a answering', async () => (await everyWorkerHolds()) && (await kubeletAnswers()), {
        timeoutMs: RECOVERY_BOUND_MS,
        intervalMs: 50,
      });
    } catch (error) {
      const why = await misplaced();
      throw why === undefined ? error : new Error(`cloud tunnel placement: ${why}`, { cause: error });
    }
  };
  /**
   * Measures how long node-a takes to come back after `since` (the moment the fault went away): the first
   * CONNECT that reaches it, and every cloud worker serving it, both within RECOVERY_BOUND_MS. Misplaced
   * tunnels fail with that reason.
   */
  const measureRecovery = async (since: number): Promise<{ firstMs: number; allMs: number }> => {
    const left = (): number => Math.max(since + RECOVERY_BOUND_MS - performance.now(), 1);
    await waitFor('a first CONNECT reaching node-a through a fresh tunnel', kubeletAnswers, { timeoutMs: left(), intervalMs: 50 });
    const firstMs = Math.round(performance.now() - since);
    try {
      await waitFor('every cloud worker holding a tunnel of node-a', everyWorkerHolds, { timeoutMs: left(), intervalMs: 50 });
      await topology.waitReachable('node-a', left());
    } catch (error) {
      const why = await misplaced();
      throw why === undefined ? error : new Error(`cloud tunnel placement after recovery: ${why}`, { cause: error });
    }
    return { firstMs, allMs: Math.round(performance.now() - since) };
  };
  const describeRecovery = (r: { firstMs: number; allMs: number }): string =>
    `first CONNECT through after ${r.firstMs} ms, every cloud worker serving node-a after ${r.allMs} ms`;

  before(async () => {
    toxiproxy = await startToxiproxy(faults);
    byteTarget = await startByteTarget();
    // The cloud listens on tunnelPort; Toxiproxy listens on a port of its choosing and forwards there.
    const tunnelPort = await freePort();
    const link = await toxiproxy.client.createProxy({ name: LINK, listen: '127.0.0.1:0', upstream: `127.0.0.1:${tunnelPort}` });
    topology = await Topology.start({
      nodes: ['node-a'],
      cloudConcurrency: CLOUD_WORKERS,
      tunnelPort,
      tunnelDialPort: listenPort(link),
      serveArgs: ['--allowed-ports', String(byteTarget.port)],
    });
  });
  // Whatever a case did to the link (even when it failed half-way), the next one starts on a clean one.
  afterEach(async () => toxiproxy?.client.reset());
  after(async () => {
    try {
      await topology?.stop();
    } finally {
      await faults.stopAll();
      await byteTarget?.close();
    }
  });

  step('the tunnels really run through Toxiproxy', async () => {
    await settle();
    assert.equal((await toxiproxy.client.proxy(LINK)).upstream, `127.0.0.1:${topology.tunnelPort}`);
    // Cutting the link must cut node-a off: nothing reaches the cloud's tunnel port around Toxiproxy.
    await toxiproxy.client.disable(LINK);
    await waitFor('node-a refused with 503 once Toxiproxy closed the tunnels', async () => (await connectOnce()).status === 503, { timeoutMs: 5000 });
  });

  step('300 ms latency each way: CONNECT works and 8 MiB arrive intact', async (t) => {
    await settle();
    await toxiproxy.client.addToxicBothWays(LINK, { name: 'latency', type: 'latency', attributes: { latency: 300 } });
    const size = 8 * MiB;
    const timed = await timedGet(connectKept, `/blob?size=${size}&seed=latency`);
    assert.equal(timed.status, 200);
    assert.equal(timed.bytes, size);
    assert.equal(timed.sha256, blobSha256(size, 'latency'));
    // The CONNECT needs one round trip over the link (the edge answers it): proof the toxic is in the path.
    assert.ok(timed.connectMs >= 600, `CONNECT answered in ${timed.connectMs} ms, under one 600 ms round trip`);
    t.diagnostic(
      `latency 300 ms each way: CONNECT 200 after ${timed.connectMs} ms, kubelet TLS up after ${timed.tlsMs} ms, ` +
        `first response byte (TTFB) after ${timed.firstByteMs} ms, 8 MiB done after ${timed.totalMs} ms`,
    );
  });

  step('300 ms latency and 2 MiB/s each way: downloads the target ends with its FIN arrive whole (1 KiB, 1 MiB, 64 MiB, 256 MiB), uploads too', async (t) => {
    await settle();
    await toxiproxy.client.addToxicBothWays(LINK, { name: 'latency', type: 'latency', attributes: { latency: 300 } });
    await toxiproxy.client.addToxicBothWays(LINK, { name: 'bandwidth', type: 'bandwidth', attributes: { rate: Math.round((2 * MiB) / 1000) } });
    const through = async (command: string, upload?: Iterable<Buffer>): Promise<ReadResult> => {
      const tunnel = await openConnect({ proxyHost: '127.0.0.1', proxyPort: topology.connectPort, target: `node-a:${byteTarget.port}`, proxyTls: topology.clientTls(), timeoutMs: 10_000 });
      assert.equal(tunnel.status, 200, tunnel.statusLine);
      return runCommand(tunnel.socket, command, upload);
    };
    // 256 MiB at 2 MiB/s: over two minutes, the longest step of the suite, kept because a tail lost to a
    // stream reset shows on any size but the weak link is where buffers run fullest.
    for (const size of [1024, MiB, 64 * MiB, 256 * MiB]) {
      const result = await through(`SEND ${size}`);
      assert.equal(result.ending, 'end', `${size} bytes: the stream ended with ${result.ending}`);
      assert.equal(result.bytes, size, `${size} bytes: ${result.bytes} arrived`);
      assert.equal(result.sha256, patternSha256(size), `${size} bytes: checksum`);
      t.diagnostic(`weak link, ${size} B sent then closed by the target: ${result.msTotal.toFixed(0)} ms, end ${result.msToEnd.toFixed(1)} ms after the last byte`);
    }
    const size = 8 * MiB;
    const upload = await through(`SINK ${size}`, patternBytes(size));
    assert.equal(upload.head, `OK ${size}\n`, 'the target received every byte of the pattern');
  });

  step('bandwidth capped at 1 MiB/s each way: 4 MiB arrive intact both ways, no timeout kills the stream', async (t) => {
    await settle();
    // Toxiproxy's rate is in KB/s of 1000 bytes.
    await toxiproxy.client.addToxicBothWays(LINK, { name: 'bandwidth', type: 'bandwidth', attributes: { rate: Math.round(MiB / 1000) } });
    const size = 4 * MiB;

    const downStarted = performance.now();
    const download = await httpsThroughTunnel((await connectKept()).socket, { method: 'GET', path: `/blob?size=${size}&seed=narrow-down`, keepBody: false, timeoutMs: 30_000 });
    const downMs = Math.round(performance.now() - downStarted);
    assert.equal(download.bytes, size);
    assert.equal(download.sha256, blobSha256(size, 'narrow-down'));

    const upStarted = performance.now();
    const upload = await httpsThroughTunnel((await connectKept()).socket, { method: 'POST', path: '/sha256', body: blobChunks(size, 'narrow-up'), timeoutMs: 30_000 });
    const upMs = Math.round(performance.now() - upStarted);
    assert.equal(upload.body.toString().trim(), blobSha256(size, 'narrow-up'));
    assert.equal(upload.headers['x-received-bytes'], String(size));

    // 4 MiB at 1 MiB/s cannot take much less than 4 s: proof the cap applied.
    for (const [way, ms] of [['download', downMs], ['upload', upMs]] as const) assert.ok(ms >= 3500, `${way} of 4 MiB took only ${ms} ms`);
    t.diagnostic(`bandwidth 1 MiB/s: 4 MiB download in ${downMs} ms (${rate(size, downMs)}), upload in ${upMs} ms (${rate(size, upMs)})`);
  });

  step(`a cut link: CONNECT gets 503 at once while it is down; node-a is back within ${RECOVERY_BOUND_MS / 1000} s of the link returning`, async (t) => {
    await settle();
    await toxiproxy.client.disable(LINK); // listener closed, every tunnel connection closed
    const cut = performance.now();
    await waitFor('node-a refused with 503 after the cut', async () => (await connectOnce()).status === 503, { timeoutMs: 5000, intervalMs: 20 });
    const noticedMs = Math.round(performance.now() - cut);

    // The outage lasts OUTAGE_MS; throughout, every CONNECT is refused quickly (no hang, no success).
    const OUTAGE_MS = 5000;
    let probes = 0;
    let slowestMs = 0;
    while (performance.now() - cut < OUTAGE_MS) {
      const result = await connectOnce(2000);
      assert.equal(result.status, 503, `CONNECT while the link is cut: ${result.statusLine}`);
      assert.ok(result.elapsedMs < 1000, `503 took ${result.elapsedMs} ms`);
      probes += 1;
      slowestMs = Math.max(slowestMs, result.elapsedMs);
      await delay(100); // pacing between probes, not a wait for anything
    }

    await toxiproxy.client.enable(LINK);
    const recovery = await measureRecovery(performance.now());
    t.diagnostic(
      `cut link: the cloud refused node-a ${noticedMs} ms after the cut; ${probes} CONNECTs during the ${OUTAGE_MS} ms outage ` +
        `all got 503 (slowest ${Math.round(slowestMs)} ms); after the link returned: ${describeRecovery(recovery)}`,
    );
  });

  step(`every connection reset (reset_peer): 503 at once; node-a is back within ${RECOVERY_BOUND_MS / 1000} s of the resets stopping`, async (t) => {
    await settle();
    await toxiproxy.client.addToxicBothWays(LINK, { name: 'reset', type: 'reset_peer', attributes: { timeout: 0 } });
    const started = performance.now();
    // Tunnels already open are reset when data next crosses them (a ping, within one ping interval).
    await waitFor('node-a refused with 503 once its tunnels are reset', async () => (await connectOnce()).status === 503, { timeoutMs: 3 * PING_INTERVAL_MS + 2000, intervalMs: 50 });
    const noticedMs = Math.round(performance.now() - started);
    const refused = await connectOnce(2000);
    assert.equal(refused.status, 503, refused.statusLine);
    assert.ok(refused.elapsedMs < 1000, `503 took ${refused.elapsedMs} ms`);

    await toxiproxy.client.clearToxics(LINK);
    const recovery = await measureRecovery(performance.now());
    t.diagnostic(`reset_peer: CONNECT refused with 503 ${noticedMs} ms after the resets began (then in ${Math.round(refused.elapsedMs)} ms); after they stopped: ${describeRecovery(recovery)}`);
  });

  // A half-dead link: Toxiproxy's timeout toxic drops every byte in both directions but keeps the TCP
  // connections open (no FIN, no RST), as a NAT box that lost its mapping or a radio link that went deaf
  // would, seen from the application. What the cloud notices depends on whether a tunnel has carried a
  // CONNECT yet. Removing the toxic makes Toxiproxy close the connections it held (its timeout toxic does
  // that on removal), so the edge then dials fresh tunnels.

  step('half-dead link, idle tunnels: the cloud\'s ping finds them dead and CONNECT then gets 503 at once; node-a recovers', async (t) => {
    await settle();
    // Fresh tunnels that have carried no CONNECT: dial again and send nothing through them.
    await redial();
    await waitFor('every cloud worker holding an idle tunnel of node-a', async () => (await everyWorkerHolds()) && (await tunnelState()).inUse === 0, {
      timeoutMs: RECOVERY_BOUND_MS,
    }).catch(async (error: unknown) => {
      const why = await misplaced();
      throw why === undefined ? error : new Error(`cloud tunnel placement after a redial: ${why}`, { cause: error });
    });

    await toxiproxy.client.addToxicBothWays(LINK, { name: 'blackhole', type: 'timeout', attributes: { timeout: 0 } });
    const started = performance.now();
    // A tunnel is dropped after a few missed pings (measured: about 10 s with pings every 2 s).
    await waitFor('the cloud dropping node-a\'s silent idle tunnels', async () => (await tunnelState()).holding === 0, {
      timeoutMs: 10 * PING_INTERVAL_MS,
      intervalMs: 100,
    });
    const detectedMs = Math.round(performance.now() - started);
    const refused = await connectOnce(2000);
    assert.equal(refused.status, 503, refused.statusLine);
    assert.ok(refused.elapsedMs < 1000, `503 took ${refused.elapsedMs} ms`);

    await toxiproxy.client.clearToxics(LINK);
    const recovery = await measureRecovery(performance.now());
    t.diagnostic(
      `half-dead link, idle tunnels: the cloud dropped them ${detectedMs} ms after the link went silent (ping every ${PING_INTERVAL_MS} ms); ` +
        `CONNECT then refused with 503 in ${Math.round(refused.elapsedMs)} ms; after the link came back: ${describeRecovery(recovery)}`,
    );
  });

  // Once a tunnel has carried a CONNECT it belongs to the `edge_tunnels` cluster's HTTP/2 pool, where the
  // reverse-tunnel ping no longer checks it. Without the HTTP/2 keepalive the translator configures on that
  // cluster (ping every 5 s, dropped after 10 s without any frame; measured before it existed: CONNECTs
  // sent down such a tunnel hung for 220 s), a silent link would never be noticed.
  step('half-dead link, tunnels in use: HTTP/2 keepalive drops them, no CONNECT hangs, then 503 at once; node-a recovers', async (t) => {
    await settle();
    // Every cloud worker's tunnel in use: CONNECTs land on any worker, so send them until each has used its own.
    await waitFor('every cloud worker using its tunnel of node-a', async () => {
      if (!(await kubeletAnswers())) return false;
      const state = await tunnelState();
      return state.holding === CLOUD_WORKERS && state.inUse === CLOUD_WORKERS;
    }, { timeoutMs: 10_000, intervalMs: 20 });
    await toxiproxy.client.addToxicBothWays(LINK, { name: 'blackhole', type: 'timeout', attributes: { timeout: 0 } });
    const started = performance.now();
    // Keepalive interval + timeout (15 s) at most, with slack for a loaded machine.
    await waitFor('the cloud dropping node-a\'s silent tunnels in use', async () => (await cloudStats(/^cluster\.edge_tunnels\.upstream_cx_active$/)) === 'cluster.edge_tunnels.upstream_cx_active=0', {
      timeoutMs: KEEPALIVE_BOUND_MS,
      intervalMs: 100,
    });
    const detectedMs = Math.round(performance.now() - started);
    const keepaliveTimeouts = await cloudStats(/^cluster\.edge_tunnels\.http2\.keepalive_timeout$/);
    // A fresh CONNECT may still take a pooled idle tunnel that its ping has not yet found dead; its own
    // keepalive then ends it: it gets an answer within one keepalive bound instead of hanging.
    const probe = await connectOnce(KEEPALIVE_BOUND_MS).then(
      (result) => ({ status: result.status, ms: Math.round(result.elapsedMs) }),
      (error: unknown) => ({ status: 0, ms: -1, error: String(error) }),
    );
    assert.ok(probe.status !== 0, `a CONNECT over the silent link hung: ${JSON.stringify(probe)}`);
    await waitFor('node-a refused with 503 at once', async () => {
      const result = await connectOnce(2000);
      return result.status === 503 && result.elapsedMs < 1000;
    }, { timeoutMs: 10 * PING_INTERVAL_MS, intervalMs: 100 });

    await toxiproxy.client.clearToxics(LINK);
    const recovery = await measureRecovery(performance.now());
    t.diagnostic(
      `half-dead link, tunnels in use: the cloud dropped them ${detectedMs} ms after the link went silent (${keepaliveTimeouts}); ` +
        `a fresh CONNECT meanwhile: ${probe.status} in ${probe.ms} ms; after the link came back: ${describeRecovery(recovery)}`,
    );
  });
});

interface TimedGet {
  status: number;
  bytes: number;
  sha256: string;
  /** Milliseconds from starting the CONNECT until: its 200 arrived, */
  connectMs: number;
  /** the TLS handshake with the kubelet completed, */
  tlsMs: number;
  /** the first byte of the HTTP response arrived (time to first byte), */
  firstByteMs: number;
  /** the whole body arrived. */
  totalMs: number;
}

/**
 * CONNECT, then GET `path` over TLS to the kubelet, timing each phase from the start of the CONNECT. The
 * kubelet's certificate is not verified (it is self-signed); the caller checks the body's hash.
 */
async function timedGet(connect: () => Promise<ConnectResult>, path: string, idleTimeoutMs = 30_000): Promise<TimedGet> {
  const started = performance.now();
  const since = (): number => Math.round(performance.now() - started);
  const tunnel = await connect();
  const connectMs = since();
  let tlsSocket: tls.TLSSocket | undefined;
  let tlsMs = -1;
  let firstByteMs = -1;
  try {
    return await new Promise<TimedGet>((resolve, reject) => {
      const req = https.request(
        {
          method: 'GET',
          path,
          host: '127.0.0.1',
          createConnection: () => {
            tlsSocket = tls.connect({ socket: tunnel.socket, rejectUnauthorized: false });
            tlsSocket.once('secureConnect', () => (tlsMs = since()));
            tlsSocket.once('data', () => (firstByteMs = since()));
            return tlsSocket;
          },
        },
        (res) => {
          const hash = createHash('sha256');
          let bytes = 0;
          res.on('data', (chunk: Buffer) => {
            hash.update(chunk);
            bytes += chunk.length;
          });
          res.on('error', reject);
          res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, sha256: hash.digest('hex'), connectMs, tlsMs, firstByteMs, totalMs: since() }));
        },
      );
      req.setTimeout(idleTimeoutMs, () => req.destroy(new Error(`GET ${path} through the tunnel: idle for ${idleTimeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  } finally {
    tlsSocket?.destroy();
    tunnel.socket.destroy();
  }
}

function rate(bytes: number, ms: number): string {
  return `${(bytes / MiB / (ms / 1000)).toFixed(2)} MiB/s`;
}
