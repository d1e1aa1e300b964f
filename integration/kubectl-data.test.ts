// The real clients over the real tunnel with real sizes: `kubectl cp` and `kubectl exec` of 256 MiB
// from a pod on an edge node, and 256 MiB up through `kubectl exec -i`, every one checked by sha256.
// These are the transfers that ended short (or failed) when the edge Envoy terminated CONNECT itself:
// the kubelet ends each of them by closing its side first.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { after, before, describe } from 'node:test';
import { patternBytes, patternSha256 } from './harness/byte-target.js';
import { toolPath } from './kube/cluster.js';
import { EdgeCluster } from './kube/edge-cluster.js';
import { stepsWithLogs } from './topology.js';

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const FILE = 'blob-256mib';

interface Run {
  readonly code: number | null;
  readonly stdoutSha256: string;
  readonly stdoutBytes: number;
  /** The first 256 bytes of standard output, as text. */
  readonly stdoutHead: string;
  readonly stderr: string;
}

describe('kubectl cp and exec of 256 MiB through edge-tunnel (real kube-apiserver, kwok kubelet)', { concurrency: false, timeout: 900_000 }, () => {
  let edge: EdgeCluster;
  const step = stepsWithLogs(() => edge?.describeFailure());

  /** Runs kubectl, hashing its standard output as it streams (256 MiB never sit in memory). */
  const kubectl = (args: readonly string[], stdin?: Iterable<Buffer>): Promise<Run> =>
    new Promise((resolve, reject) => {
      const child = spawn(toolPath('kubectl'), ['--kubeconfig', edge.cluster.kubeconfig, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      const hash = createHash('sha256');
      let bytes = 0;
      let head = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        if (head.length < 256) head += chunk.subarray(0, 256 - head.length).toString('latin1');
        hash.update(chunk);
        bytes += chunk.length;
      });
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdoutSha256: hash.digest('hex'), stdoutBytes: bytes, stdoutHead: head, stderr }));
      if (stdin === undefined) child.stdin.end();
      // kwok's exec never closes the command's stdin, so the upload's end is the command's own count.
      else pipeline(Readable.from(stdin), child.stdin).catch(() => undefined);
    });

  const fileSha256 = async (path: string): Promise<string> => {
    const hash = createHash('sha256');
    await pipeline(createReadStream(path), hash);
    return hash.digest('hex');
  };

  before(async () => {
    edge = await EdgeCluster.start({ nodes: [{ name: 'edge-a', ip: '192.0.2.11', podCIDR: '198.51.100.0/26' }] });
    await edge.runPod('edge-a', 'app-a');
    // kwok runs exec (and so cp's tar) on this host, in the node's exec directory: the pod's "file".
    await pipeline(Readable.from(patternBytes(SIZE)), createWriteStream(join(edge.execDir('edge-a'), FILE)));
  });
  after(async () => edge?.stop());

  step('kubectl cp from an edge pod copies 256 MiB byte-exact, 10 times in a row', async (t) => {
    const copy = join(edge.topology.dir, 'copy');
    for (let i = 1; i <= 10; i++) {
      rmSync(copy, { force: true });
      const started = performance.now();
      const run = await kubectl(['cp', `app-a:${FILE}`, copy]);
      assert.equal(run.code, 0, `kubectl cp, try ${i}: exit ${run.code}: ${run.stderr}`);
      assert.equal(await fileSha256(copy), patternSha256(SIZE), `kubectl cp, try ${i}: the copy differs`);
      t.diagnostic(`kubectl cp 256 MiB, try ${i}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
    rmSync(copy, { force: true });
  });

  step('kubectl exec … cat streams 256 MiB byte-exact with exit status 0, and a failing command still delivers all and fails', async () => {
    const ok = await kubectl(['exec', 'app-a', '--', 'cat', FILE]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdoutBytes, SIZE);
    assert.equal(ok.stdoutSha256, patternSha256(SIZE));
    const failed = await kubectl(['exec', 'app-a', '--', 'sh', '-c', `cat ${FILE}; exit 3`]);
    assert.notEqual(failed.code, 0, 'a command exiting 3 makes kubectl fail');
    // kwok names the status in an internal error; a real kubelet says "command terminated with exit code 3".
    assert.match(failed.stderr, /exit (status|code) 3/);
    assert.equal(failed.stdoutBytes, SIZE);
    assert.equal(failed.stdoutSha256, patternSha256(SIZE));
  });

  step('kubectl exec -i carries 256 MiB up to a command that reads exactly that much and exits', async () => {
    // `kubectl cp` into a kwok pod cannot finish (kwok's exec never closes the child's stdin, so `tar x`
    // waits forever); a command that stops after its byte count is the upload test that can end.
    const run = await kubectl(['exec', '-i', 'app-a', '--', 'sh', '-c', `head -c ${SIZE} | sha256sum`], patternBytes(SIZE));
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdoutHead.split(' ')[0], patternSha256(SIZE), `the command hashed what it read: ${run.stdoutHead}`);
  });
});
