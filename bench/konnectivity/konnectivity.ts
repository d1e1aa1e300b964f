// Konnectivity (apiserver-network-proxy) as the benchmarks run it: one konnectivity-server in HTTP CONNECT
// mode and one konnectivity-agent dialling it, both on loopback, with mutual TLS on the CONNECT frontend
// (as kube-apiserver's egress selector uses it) and on the agent's gRPC connection, like edge-tunnel's
// CONNECT listener and tunnels. The agent advertises the kubelet's address (ipv4=127.0.0.1) and the
// server routes by destination host only, so `CONNECT 127.0.0.1:<port>` reaches the kubelet through the
// agent or fails.
import { execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { bundlePaths, writeBundle } from '../../certs/bundle.js';
import { freePort, waitFor, type ProcessHandle, type ProcessSet } from '../../integration/harness/index.js';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN_DIR = join(ROOT, '.tools', 'bin');
const AGENT_NAME = 'konnectivity-agent';

export interface Konnectivity {
  readonly server: ProcessHandle;
  readonly agent: ProcessHandle;
  /** The HTTP CONNECT frontend on 127.0.0.1 (TLS, client certificate required). */
  readonly frontendPort: number;
  /** TLS options of a client allowed to CONNECT. */
  readonly clientTls: ConnectionOptions;
  /** What the frontend and the agent connection run, for the results. */
  readonly description: string;
}

/** A Konnectivity binary installed by bench/konnectivity/install-konnectivity.sh. */
export function konnectivityBinary(name: 'konnectivity-server' | 'konnectivity-agent'): string {
  const bin = join(BIN_DIR, name);
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(`${bin} is missing: run bash bench/konnectivity/install-konnectivity.sh (make bench does)`);
  }
  return bin;
}

/** "sigs.k8s.io/apiserver-network-proxy v0.33.0 (go1.26.8)", from the build's BUILD-INFO and build info. */
export function konnectivityVersion(): string {
  const bin = konnectivityBinary('konnectivity-server');
  let version = 'unknown version';
  try {
    version = readFileSync(join(dirname(realpathSync(bin)), 'BUILD-INFO'), 'utf8').split('\n')[0] ?? version;
  } catch {
    // no BUILD-INFO: not built by the install script
  }
  try {
    const go = execFileSync('go', ['version', '-m', bin], { encoding: 'utf8' }).split('\n')[0] ?? '';
    const goVersion = /:\s*(go\S+)/.exec(go)?.[1];
    if (goVersion !== undefined) version += ` (built with ${goVersion})`;
  } catch {
    // go missing: the version without the toolchain
  }
  return version;
}

export interface KonnectivityOptions {
  /** Where the certificates go. */
  readonly dir: string;
  /** The agent's identifiers (URL-encoded, e.g. "ipv4=127.0.0.1"): the addresses it serves. */
  readonly agentIdentifiers: string;
}

export async function startKonnectivity(processes: ProcessSet, options: KonnectivityOptions): Promise<Konnectivity> {
  const certs = join(options.dir, 'konnectivity-certs');
  // The same kind of certificates (ECDSA P-256, one CA for the proxy side, one for clients) as edge-tunnel's.
  await writeBundle({ out: certs, edgeNodes: [AGENT_NAME], cloudNames: ['127.0.0.1'], xdsNames: ['127.0.0.1'] });
  const paths = bundlePaths(certs);
  const serverCert = join(paths.cloudDir, 'tls.crt');
  const serverKey = join(paths.cloudDir, 'tls.key');
  const ports = {
    frontend: await freePort(),
    agent: await freePort(),
    admin: await freePort(),
    health: await freePort(),
    agentAdmin: await freePort(),
    agentHealth: await freePort(),
  };
  const server = await processes.start({
    name: 'konnectivity-server',
    command: konnectivityBinary('konnectivity-server'),
    args: [
      '--mode=http-connect',
      '--server-id=bench-konnectivity-server',
      '--server-count=1',
      // Route by the CONNECT's destination host only: the agent that advertised it, or an error.
      '--proxy-strategies=destHost',
      // Frontend (what kube-apiserver dials): TCP with TLS, client certificates from the client CA.
      '--server-bind-address=127.0.0.1',
      `--server-port=${ports.frontend}`,
      `--server-cert=${serverCert}`,
      `--server-key=${serverKey}`,
      `--server-ca-cert=${paths.clientCa}`,
      // Agent side: gRPC with TLS, agent certificates from the CA.
      '--agent-bind-address=127.0.0.1',
      `--agent-port=${ports.agent}`,
      `--cluster-cert=${serverCert}`,
      `--cluster-key=${serverKey}`,
      `--cluster-ca-cert=${paths.ca}`,
      '--admin-bind-address=127.0.0.1',
      `--admin-port=${ports.admin}`,
      '--health-bind-address=127.0.0.1',
      `--health-port=${ports.health}`,
    ],
  });
  const agentDir = paths.edgeDir(AGENT_NAME);
  const agent = await processes.start({
    name: 'konnectivity-agent',
    command: konnectivityBinary('konnectivity-agent'),
    args: [
      '--agent-id=bench-konnectivity-agent',
      `--agent-identifiers=${options.agentIdentifiers}`,
      '--proxy-server-host=127.0.0.1',
      `--proxy-server-port=${ports.agent}`,
      `--ca-cert=${paths.ca}`,
      `--agent-cert=${join(agentDir, 'tls.crt')}`,
      `--agent-key=${join(agentDir, 'tls.key')}`,
      '--admin-bind-address=127.0.0.1',
      `--admin-server-port=${ports.agentAdmin}`,
      '--health-server-host=127.0.0.1',
      `--health-server-port=${ports.agentHealth}`,
    ],
  });
  const alive = (h: ProcessHandle): void => {
    const exit = h.exitInfo();
    if (exit !== undefined) throw new Error(`${h.name} exited (${JSON.stringify(exit)}):\n${h.logTail(20)}`);
  };
  const ready = async (port: number): Promise<boolean> => {
    alive(server);
    alive(agent);
    return (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok === true;
  };
  // The server is ready once an agent is connected, the agent once it holds its connection to the server.
  await waitFor('konnectivity-server ready (an agent connected)', () => ready(ports.health), { timeoutMs: 20_000, intervalMs: 100 });
  await waitFor('konnectivity-agent ready', () => ready(ports.agentHealth), { timeoutMs: 20_000, intervalMs: 100 });
  return {
    server,
    agent,
    frontendPort: ports.frontend,
    clientTls: { ca: readFileSync(paths.ca), cert: readFileSync(paths.client), key: readFileSync(paths.clientKey) },
    description:
      'konnectivity-server `--mode=http-connect` on TCP with mutual TLS (`--server-cert/--server-key/--server-ca-cert`), ' +
      '`--proxy-strategies=destHost`; one konnectivity-agent with `--agent-identifiers=' +
      `${options.agentIdentifiers}\` on gRPC with mutual TLS (\`--cluster-cert/--cluster-key/--cluster-ca-cert\` and ` +
      '`--ca-cert/--agent-cert/--agent-key`); defaults otherwise (GOMAXPROCS ' +
      `${process.env.GOMAXPROCS ?? 'unset: all cores'}). The server answers ` +
      '`200 Connection Established` before its agent has dialled the destination (pkg/server/tunnel.go), so the CONNECT ' +
      'answer alone says little; the measured exchanges always complete through the kubelet',
  };
}
