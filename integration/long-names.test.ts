// Long node names through real Envoy reverse tunnels. A Kubernetes node name is a DNS subdomain of up
// to 253 characters, and edge-tunnel uses it verbatim as the reverse-tunnel node id
// (rc://<node>:edge:default@cloud_tunnel:N), as the route name the cloud picks a tunnel by,
// and, with mutual TLS, in its certificate (CN, DNS SAN, spiffe://edge-tunnel/edge/<node> URI SAN) and
// its certificate directory. This checks that a node with a name at each interesting length forms its
// tunnels and is reachable through CONNECT, by name and by address, in plaintext and with mutual TLS.
//
// A minimal variant of integration/topology.ts: that one derives the bootstrap directory
// (`edge-<name>`), the stand-in kubelet's certificate CN (`kubelet-<name>`) and a second address
// (`<name>.edge.test`) from the node name, which a 253-character name overflows (a file name is at most
// 255 bytes, an OpenSSL-made CN 64 characters, a host name 253), so here those come from a short tag.
// Everything Envoy and the xDS server see is the full name.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ConnectionOptions } from 'node:tls';
import { stringify } from 'yaml';
import { writeBootstrap } from '../agent-bootstrap/write.js';
import { bundlePaths, writeBundle } from '../certs/bundle.js';
import { dnsSubdomainError } from '../xds/model/node.js';
import {
  ProcessSet,
  freePort,
  getThroughProxy,
  runDir,
  startConnectTerminator,
  startEnvoy,
  startStandInKubelet,
  waitFor,
  type EnvoyInstance,
  type StandInKubelet,
} from './harness/index.js';

const ROOT = join(import.meta.dirname, '..');

/**
 * A valid DNS subdomain of exactly `length` characters: labels of at most 63 characters joined by dots,
 * the first starting with a tag that makes names of different lengths differ early.
 */
function dnsNameOfLength(length: number, tag = `len${length}`): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const labels: string[] = [];
  let remaining = length;
  let first = true;
  while (remaining > 0) {
    let size = Math.min(63, remaining);
    // A label may not be followed by a lone dot: leave at least two characters (".x") for the next one.
    if (remaining - size === 1) size -= 1;
    let label = first ? `${tag}-`.slice(0, size) : '';
    for (let i = 0; label.length < size; i++) label += alphabet[(labels.length * 7 + i) % alphabet.length];
    // The tag's "-" may have landed last: a label must end with a letter or digit.
    if (label.endsWith('-')) label = `${label.slice(0, -1)}x`;
    labels.push(label);
    first = false;
    remaining -= size;
    if (remaining > 0) remaining -= 1; // the dot
  }
  const name = labels.join('.');
  if (name.length !== length || dnsSubdomainError(name) !== undefined) {
    throw new Error(`dnsNameOfLength(${length}) made ${JSON.stringify(name)} (${name.length}): ${dnsSubdomainError(name)}`);
  }
  return name;
}

interface Edge {
  readonly tag: string;
  readonly name: string;
  readonly address: string;
  readonly kubelet: StandInKubelet;
  envoy?: EnvoyInstance;
}

/** The name edges require in the cloud Envoy's certificate (as in integration/topology.ts). */
const CLOUD_SERVER_NAME = 'cloud.edge-tunnel';

/** The xDS server, one cloud Envoy and one edge Envoy plus stand-in kubelet per node name. */
class LongNameTopology {
  readonly processes = new ProcessSet();
  readonly edges: Edge[] = [];
  private readonly dir: string;
  private readonly certs: string;
  private cloud?: EnvoyInstance;
  private readonly baseId = 1000 + Math.floor(Math.random() * 60_000);
  private ports!: { xds: number; xdsAdmin: number; tunnel: number; connect: number; cloudAdmin: number };

  constructor(private readonly tls: boolean) {
    this.dir = join(runDir(), tls ? 'long-names-tls' : 'long-names-insecure');
    this.certs = join(this.dir, 'certs');
  }

  async start(names: readonly { tag: string; name: string }[]): Promise<void> {
    this.ports = {
      xds: await freePort(),
      xdsAdmin: await freePort(),
      tunnel: await freePort(),
      connect: await freePort(),
      cloudAdmin: await freePort(),
    };
    if (this.tls) {
      // Every edge certificate names its node in full: CN, DNS SAN and the spiffe URI SAN.
      await writeBundle({
        out: this.certs,
        edgeNodes: names.map((n) => n.name),
        cloudNames: [CLOUD_SERVER_NAME, '127.0.0.1'],
        xdsNames: ['127.0.0.1'],
      });
    }
    for (const [i, { tag, name }] of names.entries()) {
      // The kubelet's certificate CN is `kubelet-<node>`, which OpenSSL caps at 64 characters: give it the tag.
      const kubelet = await startStandInKubelet({ node: tag });
      this.edges.push({ tag, name, address: `192.0.2.${i + 11}`, kubelet });
    }
    mkdirSync(this.dir, { recursive: true });
    const nodesFile = join(this.dir, 'nodes.yaml');
    writeFileSync(nodesFile, stringify({
      nodes: this.edges.map((e) => ({ name: e.name, addresses: [e.address], kubeletPort: e.kubelet.port })),
    }));
    const paths = bundlePaths(this.certs);
    const terminatorSocket = join(this.dir, 'terminator.sock');
    await startConnectTerminator(this.processes, terminatorSocket, `long-names-terminator${this.suffix}`);
    await this.processes.start({
      name: `long-names-xds${this.suffix}`,
      command: process.execPath,
      args: [
        '--import', 'tsx', join(ROOT, 'xds/cli/main.ts'), 'serve',
        '--nodes-file', nodesFile,
        '--listen', `127.0.0.1:${this.ports.xds}`,
        '--admin', `127.0.0.1:${this.ports.xdsAdmin}`,
        '--tunnel-listen', `127.0.0.1:${this.ports.tunnel}`,
        '--tunnel-dial', `127.0.0.1:${this.ports.tunnel}`,
        '--connect-listen', `127.0.0.1:${this.ports.connect}`,
        '--tunnels-per-cloud', '1',
        '--terminator-socket', terminatorSocket,
        ...(this.tls
          ? [
              '--tls-dir', paths.xdsDir,
              '--cloud-tls-dir', paths.cloudDir,
              '--edge-tls-dir', paths.edgeDir('{node}'),
              '--cloud-server-name', CLOUD_SERVER_NAME,
            ]
          : ['--insecure']),
      ],
      cwd: ROOT,
    });
    await waitFor('xDS server healthy', async () => (await fetch(`http://127.0.0.1:${this.ports.xdsAdmin}/healthz`).catch(() => undefined))?.ok, {
      timeoutMs: 20_000,
    });
    const xds = { address: '127.0.0.1', port: this.ports.xds };
    const cloudConfig = writeBootstrap({
      role: 'cloud',
      id: 'cloud-1',
      xds,
      adminPort: this.ports.cloudAdmin,
      concurrency: 1,
      outDir: join(this.dir, 'cloud'),
      tls: this.tls ? { dir: paths.cloudDir, serverName: '127.0.0.1' } : undefined,
    });
    this.cloud = await startEnvoy(this.processes, {
      name: `long-names-cloud${this.suffix}`,
      configPath: cloudConfig,
      baseId: this.baseId,
      concurrency: 1,
      adminPort: this.ports.cloudAdmin,
      logLevel: 'debug',
    });
    await this.cloud.waitReady();
    for (const [i, edge] of this.edges.entries()) {
      const adminPort = await freePort();
      const configPath = writeBootstrap({
        role: 'edge',
        id: edge.name,
        xds,
        adminPort,
        concurrency: 1,
        outDir: join(this.dir, `edge-${edge.tag}`),
        tls: this.tls ? { dir: paths.edgeDir(edge.name), serverName: '127.0.0.1' } : undefined,
      });
      edge.envoy = await startEnvoy(this.processes, {
        name: `long-names-edge-${edge.tag}${this.suffix}`,
        configPath,
        baseId: this.baseId + 1 + i,
        concurrency: 1,
        adminPort,
        logLevel: 'debug',
      });
      await edge.envoy.waitReady();
    }
  }

  private get suffix(): string {
    return this.tls ? '-tls' : '';
  }

  get cloudEnvoy(): EnvoyInstance {
    if (!this.cloud) throw new Error('the cloud Envoy is not running');
    return this.cloud;
  }

  /** TLS options of a cloud client allowed to CONNECT (undefined in insecure mode). */
  private clientTls(): ConnectionOptions | undefined {
    if (!this.tls) return undefined;
    const paths = bundlePaths(this.certs);
    return { ca: readFileSync(paths.ca), cert: readFileSync(paths.client), key: readFileSync(paths.clientKey), servername: CLOUD_SERVER_NAME };
  }

  /** GET / on an edge's kubelet through CONNECT to `host`; the body, or the reason it failed. */
  async reach(edge: Edge, host: string): Promise<string> {
    try {
      const proxy = { host: '127.0.0.1', port: this.ports.connect, proxyTls: this.clientTls() };
      const response = await getThroughProxy(proxy, `${host}:${edge.kubelet.port}`, '/');
      return response.status === 200 ? response.body.toString() : `HTTP ${response.status}`;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }

  async stop(): Promise<void> {
    await this.processes.stopAll();
    await Promise.all(this.edges.map((e) => e.kubelet.close()));
  }
}

// The lengths: today's typical names, the 63-character label limit, the 64 just past it, 128 and
// 200 to bisect with if the longest fails, and the Kubernetes maximum.
const LENGTHS = (process.env.LONG_NAME_LENGTHS ?? '6,63,64,128,200,253').split(',').map(Number);

for (const tls of [false, true]) {
  const mode = tls ? 'mutual TLS' : 'insecure mode';
  describe(`reverse tunnels for long node names (real Envoy, ${mode})`, { concurrency: false }, () => {
    const topology = new LongNameTopology(tls);
    const nodes = LENGTHS.map((length) => ({ tag: `len${length}`, name: dnsNameOfLength(length) }));

    before(async () => {
      try {
        await topology.start(nodes);
      } catch (error) {
        process.stderr.write(topology.processes.describeFailure());
        throw error;
      }
    });
    after(async () => topology.stop());

    it('builds valid DNS subdomains of the requested lengths', () => {
      for (const { name } of nodes) assert.equal(dnsSubdomainError(name), undefined);
      assert.equal(dnsNameOfLength(253).length, 253);
      assert.ok(dnsNameOfLength(253).split('.').every((label) => label.length <= 63));
    });

    for (const length of LENGTHS) {
      it(`a node with a ${length}-character name forms its tunnel and is reachable by name and by address`, async () => {
        const edge = topology.edges.find((e) => e.name.length === length);
        assert.ok(edge);
        const expected = `kubelet ${edge.tag}\n`;
        let last = '';
        try {
          await waitFor(`${edge.tag} reachable through its tunnel`, async () => {
            last = await topology.reach(edge, edge.name);
            return last === expected;
          }, { timeoutMs: 10_000, intervalMs: 200 });
          assert.equal(await topology.reach(edge, edge.address), expected);
        } catch (error) {
          const stats = await topology.cloudEnvoy.admin.get('/stats?filter=reverse').catch(() => ({ body: '(no stats)' }));
          process.stderr.write(
            `\n--- ${mode}: ${length}-character node id ${edge.name} not reachable; last answer: ${last}\n` +
              `--- cloud reverse-tunnel stats:\n${stats.body}\n${topology.processes.describeFailure(40)}\n`,
          );
          throw error;
        }
      });
    }
  });
}
