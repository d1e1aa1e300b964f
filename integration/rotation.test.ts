// Certificate rotation against the real processes: new certificate files are written next to the old ones
// (atomic renames, as a Secret update would) and every component picks them up by itself. Nothing is
// restarted, established tunnels and ADS streams stay up, and new handshakes see the new certificate.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { parse } from 'yaml';
import { bundlePaths, loadBundleAuthority, writeTlsDir } from '../certs/bundle.js';
import { finishRollover, reissueAll, startRollover } from '../certs/rollover.js';
import { cloudIdentityUri, issue } from '../certs/issue.js';
import {
  EnvoyAdmin,
  TunnelSession,
  envoyCertificates,
  monitor,
  type Monitor,
  envoyOwnSerials,
  presentedSerial,
  serialOfPem,
  waitFor,
} from './harness/index.js';
import { CLOUD_SERVER_NAME, Topology, stepsWithLogs } from './topology.js';

interface StreamEntry {
  key: string;
  proxy: string;
  stream: number;
}

describe('certificate rotation without restarts (xDS server, cloud Envoy, edge Envoys)', { concurrency: false }, () => {
  let topology: Topology;
  let paths: ReturnType<typeof bundlePaths>;
  let pidsAtStart: string[];

  const step = stepsWithLogs(() => topology?.processes.describeFailure());

  const runningPids = (): string[] =>
    topology.processes.handles.filter((h) => h.exitInfo() === undefined).map((h) => `${h.name}:${h.pid}`).sort();
  const assertNothingRestarted = (): void => {
    assert.deepEqual(runningPids(), pidsAtStart, 'the same processes run as at the start: nothing was restarted');
  };

  const kubeletTarget = (node: string): string => `${node}:${topology.kubeletPort(node)}`;
  const reachOrThrow = async (node: string): Promise<void> => {
    const body = await topology.reach(node);
    if (body !== `kubelet ${node}\n`) {
      // Say what the proxy answers now: 404 (not routed), 503 (no tunnel on that worker), a TLS failure.
      const now = await topology.connect(kubeletTarget(node)).then(
        (c) => (c.socket.destroy(), c.statusLine),
        (error: Error) => error.message,
      );
      throw new Error(`${node} not reached through a new CONNECT (got ${JSON.stringify(body)}; a CONNECT now: ${now})`);
    }
  };

  /** A CONNECT tunnel to a node's kubelet, kept open with an HTTPS keep-alive session on it. */
  const keptSession = async (node: string): Promise<TunnelSession> => {
    const tunnel = await topology.connect(kubeletTarget(node));
    assert.equal(tunnel.status, 200, tunnel.statusLine);
    const session = await TunnelSession.open(tunnel.socket);
    const first = await session.request('GET', '/');
    assert.equal(first.status, 200);
    assert.equal(first.body, `kubelet ${node}\n`);
    assert.equal(session.peerSubjectCN, `kubelet-${node}`);
    return session;
  };
  const sessionGet = async (session: TunnelSession, node: string): Promise<void> => {
    const response = await session.request('GET', '/');
    if (response.status !== 200 || response.body !== `kubelet ${node}\n`) {
      throw new Error(`kept tunnel to ${node}: ${response.status} ${JSON.stringify(response.body)}`);
    }
  };

  /** A kept session to node-a and new CONNECTs to node-a and node-b, round after round. */
  const loadOnBothNodes = async (): Promise<{ session: TunnelSession; load: Monitor }> => {
    const session = await keptSession('node-a');
    const load = monitor(async () => {
      await sessionGet(session, 'node-a');
      await reachOrThrow('node-a');
      await reachOrThrow('node-b');
    });
    return { session, load };
  };

  const xdsStreams = async (): Promise<StreamEntry[]> => {
    const response = await fetch(`${topology.xdsAdminUrl}/proxies`);
    assert.equal(response.status, 200);
    const proxies = parse(await response.text()) as { streams?: StreamEntry[] };
    return [...(proxies.streams ?? [])].sort((a, b) => a.key.localeCompare(b.key) || a.stream - b.stream);
  };

  /** Waits until `probe` returns true and returns how long that took since `since`. */
  const tookEffect = async (what: string, since: number, probe: () => Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<number> => {
    await waitFor(what, probe, { timeoutMs, intervalMs });
    return Math.round(performance.now() - since);
  };

  before(async () => {
    topology = await Topology.start({ nodes: ['node-a', 'node-b'] });
    paths = bundlePaths(topology.certs);
    try {
      await topology.waitReachable('node-a', 30_000);
      await topology.waitReachable('node-b', 30_000);
    } catch (error) {
      process.stderr.write(`\n--- logs after failure of the setup ---\n${topology.processes.describeFailure()}\n`);
      throw error;
    }
    pidsAtStart = runningPids();
  });
  after(async () => topology?.stop());

  step('the CONNECT listener presents a re-issued cloud certificate; an open tunnel keeps working', async (t) => {
    const clientTls = topology.clientTls();
    assert.ok(clientTls, 'the topology runs with TLS');
    const connectPort = topology.connectPort;
    const serialOnConnectPort = () => presentedSerial({ host: '127.0.0.1', port: connectPort, tls: clientTls });
    const oldSerial = await serialOnConnectPort();
    assert.equal(oldSerial, serialOfPem(readFileSync(join(paths.cloudDir, 'tls.crt'))), 'the CONNECT port presents the cloud certificate');
    const streamsBefore = await xdsStreams();

    const { session, load } = await loadOnBothNodes();
    try {
      const ca = await loadBundleAuthority(topology.certs, 'ca');
      const pem = await issue(ca, {
        commonName: 'edge-tunnel cloud',
        dnsNames: [CLOUD_SERVER_NAME],
        ipAddresses: ['127.0.0.1'],
        uris: [cloudIdentityUri('cloud')],
        usage: 'both',
      });
      const newSerial = serialOfPem(pem.cert);
      assert.notEqual(newSerial, oldSerial);
      const rotated = performance.now();
      writeTlsDir(paths.cloudDir, pem, { 'ca.crt': ca.cert, 'client-ca.crt': readFileSync(paths.clientCa, 'utf8') });

      const handshakeMs = await tookEffect('a new handshake on the CONNECT port to present the new cloud certificate', rotated, async () => (await serialOnConnectPort()) === newSerial, 10_000);
      t.diagnostic(`cloud certificate: new CONNECT handshakes see it ${handshakeMs} ms after the files were written`);
      // The old tunnel carries another request right after the switch, on the same TLS-over-CONNECT socket.
      await sessionGet(session, 'node-a');
      // Every TLS context of the cloud Envoy (both listeners and its xDS client) holds the new certificate.
      const adminMs = await tookEffect('cloud Envoy /certs to list only the new certificate', rotated, async () => {
        const serials = await envoyOwnSerials(topology.cloudAdmin);
        return serials.length === 1 && serials[0] === newSerial;
      }, 10_000);
      t.diagnostic(`cloud certificate: every cloud Envoy TLS context holds it after ${adminMs} ms`);
      // Keep the load running for a while after the switch, counted in rounds rather than time.
      const roundsAtSwitch = load.rounds;
      await waitFor('20 more rounds of requests after the switch', () => load.rounds >= roundsAtSwitch + 20, { timeoutMs: 20_000 });
    } finally {
      const { rounds, failures } = await load.stop();
      t.diagnostic(`cloud certificate: ${rounds} rounds (kept tunnel + new CONNECTs to node-a and node-b) during the rotation, ${failures.length} failed`);
      session.close();
      assert.deepEqual(failures, [], 'no request failed during the rotation');
    }
    assert.ok(session.answered >= 22, `the kept tunnel answered ${session.answered} requests`);
    assert.equal(session.closed, undefined);
    await reachOrThrow('node-a');
    await reachOrThrow('node-b');
    assert.deepEqual(await xdsStreams(), streamsBefore, 'the ADS streams are the same ones as before');
    assertNothingRestarted();
  });

  step('an edge Envoy picks up its re-issued node certificate; its node stays reachable throughout', async (t) => {
    const edgeAdmin = new EnvoyAdmin(topology.edgeAdminPort('node-a'));
    const edgeCertFile = join(paths.edgeDir('node-a'), 'tls.crt');
    const oldSerial = serialOfPem(readFileSync(edgeCertFile));
    assert.deepEqual(await envoyOwnSerials(edgeAdmin), [oldSerial], 'node-a holds its node certificate');
    const streamsBefore = await xdsStreams();

    const session = await keptSession('node-a');
    const load = monitor(async () => {
      await sessionGet(session, 'node-a');
      await reachOrThrow('node-a');
    });
    try {
      await topology.issueEdgeCertificate('node-a');
      const rotated = performance.now();
      const newSerial = serialOfPem(readFileSync(edgeCertFile));
      assert.notEqual(newSerial, oldSerial);
      const ms = await tookEffect('node-a /certs to list only the new node certificate', rotated, async () => {
        const serials = await envoyOwnSerials(edgeAdmin);
        return serials.length === 1 && serials[0] === newSerial;
      }, 10_000);
      t.diagnostic(`edge certificate: every TLS context of node-a's Envoy holds it ${ms} ms after the files were written`);
      const roundsAtSwitch = load.rounds;
      await waitFor('20 more rounds of requests after the switch', () => load.rounds >= roundsAtSwitch + 20, { timeoutMs: 20_000 });
    } finally {
      const { rounds, failures } = await load.stop();
      t.diagnostic(`edge certificate: ${rounds} rounds (kept tunnel + new CONNECTs to node-a) during the rotation, ${failures.length} failed`);
      session.close();
      assert.deepEqual(failures, [], 'no request failed during the rotation');
    }
    assert.equal(session.closed, undefined);
    await reachOrThrow('node-b');
    assert.deepEqual(await xdsStreams(), streamsBefore, 'the ADS streams are the same ones as before');
    assertNothingRestarted();
  });

  step('a CA rollover with an overlap: every certificate re-issued by a new CA, no tunnel, stream or request dropped', async (t) => {
    const streamsBefore = await xdsStreams();
    const edgeAdmins = ['node-a', 'node-b'].map((node) => new EnvoyAdmin(topology.edgeAdminPort(node)));
    const admins = [topology.cloudAdmin, ...edgeAdmins];
    const caSerials = async (admin: EnvoyAdmin): Promise<Set<string>> =>
      new Set((await envoyCertificates(admin)).filter((c) => c.kind === 'ca_cert').map((c) => c.serial));
    const oldCa = serialOfPem(readFileSync(paths.ca));

    const { session, load } = await loadOnBothNodes();
    try {
      await startRollover(topology.certs);
      const nextCa = serialOfPem(readFileSync(paths.caNext));
      const started = performance.now();
      for (const admin of admins) {
        await waitFor(`Envoy on ${admin.port} trusting old and next CA`, async () => {
          const serials = await caSerials(admin);
          return serials.has(oldCa) && serials.has(nextCa);
        }, { timeoutMs: 10_000, intervalMs: 50 });
      }
      t.diagnostic(`CA rollover: every Envoy trusts both CAs ${Math.round(performance.now() - started)} ms after start`);
      // The xDS server too: a proxy certificate from the next CA completes a handshake on its port.
      const nextSigned = await issue(await loadBundleAuthority(topology.certs, 'ca'), { commonName: 'probe', uris: ['spiffe://edge-tunnel/edge/node-a'], usage: 'client' });
      const xdsHandshake = (pem: { cert: string; key: string }) =>
        presentedSerial({ host: '127.0.0.1', port: topology.xdsPort, tls: { ca: readFileSync(paths.ca), cert: pem.cert, key: pem.key, ALPNProtocols: ['h2'] } });
      await waitFor('the xDS server trusting the next CA', async () => (await xdsHandshake(nextSigned).then(() => true, () => false)), { timeoutMs: 15_000, intervalMs: 100 });

      await reissueAll(topology.certs, 'ca');
      const reissued = performance.now();
      const ownSerial = (dir: string): string => serialOfPem(readFileSync(join(dir, 'tls.crt')));
      const expected = [ownSerial(paths.cloudDir), ownSerial(paths.edgeDir('node-a')), ownSerial(paths.edgeDir('node-b'))];
      for (const [i, admin] of admins.entries()) {
        await waitFor(`Envoy on ${admin.port} presenting its re-issued certificate`, async () => {
          const own = await envoyOwnSerials(admin);
          return own.length === 1 && own[0] === expected[i];
        }, { timeoutMs: 10_000, intervalMs: 50 });
      }
      t.diagnostic(`CA rollover: every Envoy holds its certificate from the next CA ${Math.round(performance.now() - reissued)} ms after re-issue`);
      const xdsSerial = serialOfPem(readFileSync(join(paths.xdsDir, 'tls.crt')));
      await waitFor('the xDS server presenting its certificate from the next CA', async () => (await xdsHandshake(nextSigned)) === xdsSerial, { timeoutMs: 15_000, intervalMs: 100 });
      t.diagnostic(`CA rollover: every component holds its new certificate ${Math.round(performance.now() - reissued)} ms after re-issue; only now may the old CA go`);

      await finishRollover(topology.certs);
      const finished = performance.now();
      for (const admin of admins) {
        await waitFor(`Envoy on ${admin.port} trusting the next CA alone`, async () => {
          const serials = await caSerials(admin);
          return !serials.has(oldCa) && serials.has(nextCa);
        }, { timeoutMs: 10_000, intervalMs: 50 });
      }
      t.diagnostic(`CA rollover: the old CA is trusted nowhere ${Math.round(performance.now() - finished)} ms after finish`);
      const roundsAtFinish = load.rounds;
      await waitFor('20 more rounds of requests after the rollover', () => load.rounds >= roundsAtFinish + 20, { timeoutMs: 20_000 });
    } finally {
      const { rounds, failures } = await load.stop();
      t.diagnostic(`CA rollover: ${rounds} rounds (kept tunnel + new CONNECTs to node-a and node-b) throughout, ${failures.length} failed`);
      session.close();
      assert.deepEqual(failures, [], 'no request failed during the rollover');
    }
    assert.equal(session.closed, undefined, 'the kept tunnel survived');
    assert.deepEqual(await xdsStreams(), streamsBefore, 'the ADS streams are the same ones as before');
    assertNothingRestarted();
  });

  step('a client CA rollover: CONNECT clients re-issued by a new client CA, nothing dropped', async (t) => {
    const caSerials = async (): Promise<Set<string>> =>
      new Set((await envoyCertificates(topology.cloudAdmin)).filter((c) => c.kind === 'ca_cert').map((c) => c.serial));
    const oldClientCa = serialOfPem(readFileSync(paths.clientCa));
    const { session, load } = await loadOnBothNodes();
    try {
      await startRollover(topology.certs, 'clientCa');
      const nextClientCa = serialOfPem(readFileSync(paths.clientCaNext));
      await waitFor('the CONNECT listener trusting both client CAs', async () => {
        const serials = await caSerials();
        return serials.has(oldClientCa) && serials.has(nextClientCa);
      }, { timeoutMs: 10_000, intervalMs: 50 });
      // The test's CONNECT client reads its certificate for every request: from now on, the new one.
      await reissueAll(topology.certs, 'clientCa');
      const roundsAtReissue = load.rounds;
      await waitFor('10 rounds with the re-issued client certificate', () => load.rounds >= roundsAtReissue + 10, { timeoutMs: 20_000 });
      await finishRollover(topology.certs, 'clientCa');
      await waitFor('the CONNECT listener trusting the new client CA alone', async () => {
        const serials = await caSerials();
        return !serials.has(oldClientCa) && serials.has(nextClientCa);
      }, { timeoutMs: 10_000, intervalMs: 50 });
      const roundsAtFinish = load.rounds;
      await waitFor('20 more rounds after the rollover', () => load.rounds >= roundsAtFinish + 20, { timeoutMs: 20_000 });
    } finally {
      const { rounds, failures } = await load.stop();
      t.diagnostic(`client CA rollover: ${rounds} rounds (kept tunnel + new CONNECTs) throughout, ${failures.length} failed`);
      session.close();
      assert.deepEqual(failures, [], 'no request failed during the rollover');
    }
    assert.equal(session.closed, undefined, 'the kept tunnel survived');
    assertNothingRestarted();
  });

  step('the xDS server presents a re-issued certificate; ADS streams stay and still deliver changes', async (t) => {
    const xdsPort = topology.xdsPort;
    // Any client certificate of the proxies' CA will do for a handshake: node-a's.
    const edgeDir = paths.edgeDir('node-a');
    const clientTls = {
      ca: readFileSync(paths.ca),
      cert: readFileSync(join(edgeDir, 'tls.crt')),
      key: readFileSync(join(edgeDir, 'tls.key')),
      ALPNProtocols: ['h2'],
    };
    const serialOnXdsPort = () => presentedSerial({ host: '127.0.0.1', port: xdsPort, tls: clientTls });
    const oldSerial = await serialOnXdsPort();
    assert.equal(oldSerial, serialOfPem(readFileSync(join(paths.xdsDir, 'tls.crt'))), 'the xDS port presents the xDS certificate');
    const streamsBefore = await xdsStreams();
    assert.deepEqual(streamsBefore.map((s) => s.key), ['cloud', 'edge/node-a', 'edge/node-b']);

    const ca = await loadBundleAuthority(topology.certs, 'ca');
    const pem = await issue(ca, { commonName: 'edge-tunnel xDS server', ipAddresses: ['127.0.0.1'], usage: 'server' });
    const newSerial = serialOfPem(pem.cert);
    const rotated = performance.now();
    writeTlsDir(paths.xdsDir, pem, { 'ca.crt': ca.cert });
    const ms = await tookEffect('a new handshake on the xDS port to present the new xDS certificate', rotated, async () => (await serialOnXdsPort()) === newSerial, 15_000, 100);
    t.diagnostic(`xDS certificate: new handshakes on the xDS port see it ${ms} ms after the files were written`);
    assert.deepEqual(await xdsStreams(), streamsBefore, 'the ADS streams are the same ones as before');

    // The old streams still deliver: a nodes-file change reaches the cloud Envoy over them.
    const changed = performance.now();
    topology.writeNodes(['node-a']);
    await waitFor('node-b refused after it left the nodes file', async () => {
      const result = await topology.connect(kubeletTarget('node-b'));
      result.socket.destroy();
      return result.status === 404;
    }, { timeoutMs: 5000 });
    t.diagnostic(`xDS certificate: removing node-b reached the cloud Envoy in ${Math.round(performance.now() - changed)} ms`);
    await reachOrThrow('node-a');
    topology.writeNodes(['node-a', 'node-b']);
    await topology.waitReachable('node-b', 5000);
    assert.deepEqual(
      (await xdsStreams()).filter((s) => s.key === 'cloud'),
      streamsBefore.filter((s) => s.key === 'cloud'),
      'the cloud Envoy got the change over its old stream',
    );
    assertNothingRestarted();
  });

});
