// The data path's promise: every byte a target (a kubelet) writes before it closes reaches the client,
// in order, whoever closes first and however large, and the client sees the end at once. Through the
// real product on loopback (mutual TLS on the client hop and the tunnel, the connect-terminator at the
// edge), against a raw byte target so that nothing but the tunnel frames the stream: a short stream would
// look complete to the client, so every transfer is checked by size and sha256. Times are reported as
// diagnostics, never asserted.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { patternBytes, patternSha256, runCommand, startByteTarget, type ByteTarget, type ReadResult } from './harness/byte-target.js';
import { EnvoyAdmin } from './harness/index.js';
import { Topology, stepsWithLogs } from './topology.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('data path: nothing lost (target closes first; TLS on; connect-terminator)', { concurrency: false, timeout: 600_000 }, () => {
  let topology: Topology;
  let target: ByteTarget;

  const step = stepsWithLogs(() => topology?.processes.describeFailure());

  /** CONNECT to node-a's byte target, then one command over the tunnel. */
  const through = async (command: string, upload?: Iterable<Buffer>): Promise<ReadResult> => {
    const tunnel = await topology.connect(`node-a:${target.port}`);
    assert.equal(tunnel.status, 200, tunnel.statusLine);
    return runCommand(tunnel.socket, command, upload);
  };

  before(async () => {
    target = await startByteTarget();
    topology = await Topology.start({ nodes: ['node-a'], serveArgs: ['--allowed-ports', String(target.port)] });
    await topology.waitReachable('node-a', 30_000);
  });
  after(async () => {
    await topology?.stop();
    await target?.close();
  });

  step('downloads the target ends with its FIN arrive whole at 1 KiB, 1 MiB, 64 MiB and 256 MiB, three times each', async (t) => {
    for (const size of [KiB, MiB, 64 * MiB, 256 * MiB]) {
      for (let i = 0; i < 3; i++) {
        const result = await through(`SEND ${size}`);
        assert.equal(result.ending, 'end', `${size} bytes, try ${i + 1}: the stream ended with ${result.ending}`);
        assert.equal(result.bytes, size, `${size} bytes, try ${i + 1}: ${result.bytes} arrived`);
        assert.equal(result.sha256, patternSha256(size), `${size} bytes, try ${i + 1}: checksum`);
        t.diagnostic(`${size} B try ${i + 1}: ${result.msTotal.toFixed(0)} ms, end ${result.msToEnd.toFixed(1)} ms after the last byte`);
      }
    }
  });

  step('an upload of 256 MiB reaches the target whole; its answer and FIN come back', async () => {
    const size = 256 * MiB;
    const result = await through(`SINK ${size}`, patternBytes(size));
    assert.equal(result.ending, 'end');
    assert.equal(result.head, `OK ${size}\n`, 'the target received every byte of the pattern');
  });

  // The client keeps sending when the target closes. The cloud Envoy then stops reading the client and
  // closes only after the client had 1 s to read the end (delayed_close_timeout); at 40 ms this failed
  // under load (a reset that overtook the last bytes). Every byte and the FIN must arrive.
  it('a download the target ends while the client is still sending arrives whole (an exec whose command exits while stdin streams)', async (t) => {
    for (const size of [MiB, 64 * MiB]) {
      for (let i = 0; i < 3; i++) {
        // The client keeps uploading (far more than the target will read) while the target sends and closes.
        const result = await through(`SEND ${size}`, patternBytes(1024 * MiB));
        assert.equal(result.ending, 'end', `${size} bytes, try ${i + 1}: the stream ended with ${result.ending}`);
        assert.equal(result.bytes, size, `${size} bytes, try ${i + 1}: ${result.bytes} arrived`);
        assert.equal(result.sha256, patternSha256(size), `${size} bytes, try ${i + 1}: checksum`);
        t.diagnostic(`${size} B while uploading, try ${i + 1}: end ${result.msToEnd.toFixed(1)} ms after the last byte`);
      }
    }
  });

  step('neither Envoy ever reset a stream the target ended cleanly', async () => {
    // The stock shape's loss shows as resets the edge sends after the target's FIN; here the edge ends
    // streams with END_STREAM and only the cloud resets its upstream (after it has every byte).
    const edge = new EnvoyAdmin(topology.edgeAdminPort('node-a'));
    const resetsSent = (await edge.stat('http2.tx_reset')) ?? 0;
    assert.equal(resetsSent, 0, `the edge Envoy sent ${resetsSent} RST_STREAM frames`);
    const lostUpstream = (await topology.cloudAdmin.stat('cluster.edge_tunnels.upstream_rq_rx_reset')) ?? 0;
    assert.equal(lostUpstream, 0, `the cloud saw ${lostUpstream} tunnel streams reset by the edge`);
  });
});
