#!/usr/bin/env node
// agent-bootstrap: writes the Envoy bootstrap for an edge node or a cloud replica (the DaemonSet's init
// step; the demo and the tests use the same code).

import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { UsageError, durationSeconds, hostPort, nonNegativeInt, port, portList, positiveInt } from '../xds/cli/args.js';
import { EDGE_SIGNER } from '../xds/certificates/approval.js';
import { obtainCertificate, renewalDue, runCertificateAgent } from './certificate-agent.js';
import { captureRules, mayFail } from './capture.js';
import { renderBootstrap } from './bootstrap.js';
import { BUILDERS, writeBootstrap } from './write.js';
import type { XdsApi } from './bootstrap.js';

/** Where kubeadm puts the kubelet's kubeconfig: the node's own identity. */
const DEFAULT_KUBELET_KUBECONFIG = '/etc/kubernetes/kubelet.conf';

const HELP = `usage: agent-bootstrap edge|cloud|sidecar [flags]
       agent-bootstrap capture --ports LIST [--capture-port N] [--proxy-uid UID] [--dry-run]
       agent-bootstrap certificate --node NAME --dir DIR [--kubeconfig PATH] [--ca-file FILE] [--once]

  edge    bootstrap for the edge Envoy of one node (reverse-tunnel initiator)
  cloud   bootstrap for a cloud Envoy replica (reverse-tunnel responder, CONNECT entry)
  sidecar bootstrap for the Envoy beside a cloud client that cannot use a CONNECT proxy
          (metrics-server): it carries the connections the pod's iptables rules capture

  --id ID             edge: the Kubernetes node name; cloud, sidecar: this proxy's id, such as
                      the pod name (required)
  --xds HOST:PORT     the xDS server (default 127.0.0.1:18000)
  --admin-port N      Envoy admin port on 127.0.0.1 (default 19000)
  --concurrency N     the --concurrency Envoy runs with, declared to the xDS server (which warns
                      when a cloud Envoy has more workers than tunnels per edge)
  --tls-dir DIR       mutual TLS to the xDS server: DIR holds tls.crt, tls.key (this proxy's
                      certificate) and ca.crt (the xDS server's CA); files are watched, so
                      rotating them needs no restart
  --xds-server-name N the name the xDS server's certificate carries (default: the --xds host)
  --xds-api API       delta (default: incremental ADS, a change sends only what changed) or sotw
                      (State of the World, for an xDS server without delta)
  --out-dir DIR       write DIR/envoy.yaml (and, with TLS, the *.sds.yaml files it reads); required with --tls-dir
  --insecure          plaintext to the xDS server (debugging on a trusted host only); without
                      --tls-dir or --insecure the command refuses to run, and prints the
                      bootstrap to standard output only in insecure mode

capture: in a sidecar pod's init container (NET_ADMIN), redirects the pod's outgoing TCP connections
to --ports (kubelet ports: 10250,10255) to the sidecar's capture listener on 127.0.0.1 (--capture-port,
default 15006), except the sidecar's own (--proxy-uid, the Envoy user, 101 in its image). Runs
iptables; --dry-run prints the commands instead. Re-running replaces the rules.

certificate: the edge node's tunnel certificate from the Kubernetes CSR API (signer
${EDGE_SIGNER}, approved and signed by the xDS server). Makes the key here (it never
leaves the node), asks as the node itself and writes tls.key, tls.crt and ca.crt into --dir, the
directory the edge Envoy watches; then renews at two thirds of each lifetime until stopped.
  --node NAME         the Kubernetes node name (required)
  --dir DIR           the edge Envoy's certificate directory (required)
  --kubeconfig PATH   the node's own credentials (default ${DEFAULT_KUBELET_KUBECONFIG}, the kubelet's)
  --ca-file FILE      the CA bundle edges trust the cloud by (a mounted ConfigMap), copied in as
                      ca.crt, again whenever it changes
  --lifetime DUR      the lifetime to ask for (default 24h; the signer may give less)
  --timeout DUR       how long one request may wait for its certificate (default 5m)
  --key-mode MODE     the key file's mode, octal (default 0600; 0640 when Envoy runs as another
                      user and reads it through the directory's group)
  --once              obtain a certificate if there is none valid for two more thirds of its life,
                      then exit (an init container); without it, keep renewing (a sidecar)

Exit codes: 0 ok, 1 failure (a denied request names its reason), 2 usage error.
`;

async function certificate(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      node: { type: 'string' },
      dir: { type: 'string' },
      kubeconfig: { type: 'string', default: DEFAULT_KUBELET_KUBECONFIG },
      'ca-file': { type: 'string' },
      lifetime: { type: 'string', default: '24h' },
      timeout: { type: 'string', default: '5m' },
      once: { type: 'boolean', default: false },
      'key-mode': { type: 'string', default: '0600' },
      'log-level': { type: 'string', default: 'info' },
    },
  });
  if (!values.node) throw new UsageError('--node is required (the Kubernetes node name)');
  if (!values.dir) throw new UsageError('--dir is required (the edge Envoy\'s certificate directory)');
  if (!/^0?[0-7]{3}$/.test(values['key-mode']) || (parseInt(values['key-mode'], 8) & 0o037) !== 0) {
    throw new UsageError(`--key-mode: "${values['key-mode']}" is not an octal mode without write or other access (0600, 0640, 0400, 0440)`);
  }
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(values.kubeconfig);
  const options = {
    kubeConfig,
    node: values.node,
    dir: values.dir,
    caFile: values['ca-file'],
    lifetimeSeconds: durationSeconds('lifetime', values.lifetime),
    timeoutMs: durationSeconds('timeout', values.timeout) * 1000,
    keyMode: parseInt(values['key-mode'], 8),
    logger: pino({ level: values['log-level'], base: { component: 'certificate-agent', node: values.node } }),
  };
  if (values.once) {
    if (Date.now() < renewalDue(values.dir, values.node)) return;
    await obtainCertificate(options);
    return;
  }
  const abort = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => abort.abort());
  await runCertificateAgent(options, abort.signal);
}

function capture(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: {
      ports: { type: 'string' },
      'capture-port': { type: 'string', default: '15006' },
      'proxy-uid': { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
    },
  });
  if (!values.ports) throw new UsageError('--ports is required (the kubelet ports to capture, e.g. 10250,10255)');
  const rules = captureRules({
    ports: portList('ports', values.ports),
    capturePort: port('capture-port', values['capture-port']),
    proxyUid: values['proxy-uid'] === undefined ? undefined : nonNegativeInt('proxy-uid', values['proxy-uid']),
  });
  for (const args of rules) {
    if (values['dry-run']) {
      process.stdout.write(`iptables ${args.join(' ')}\n`);
      continue;
    }
    const result = spawnSync('iptables', args, { encoding: 'utf8' });
    if (result.error) throw new Error(`iptables: ${result.error.message}`);
    if (result.status !== 0 && !mayFail(args)) throw new Error(`iptables ${args.join(' ')}: ${result.stderr.trim()}`);
  }
  if (!values['dry-run']) process.stderr.write(`capturing TCP to ports ${values.ports} into 127.0.0.1:${values['capture-port']}\n`);
}

async function main(argv: string[]): Promise<number> {
  const [role, ...rest] = argv;
  if (role === '--help' || role === '-h' || rest.includes('--help')) {
    process.stdout.write(HELP);
    return 0;
  }
  try {
    if (role === 'capture') {
      capture(rest);
      return 0;
    }
    if (role === 'certificate') {
      await certificate(rest);
      return 0;
    }
    if (role !== 'edge' && role !== 'cloud' && role !== 'sidecar') throw new UsageError(`first argument must be edge, cloud, sidecar, capture or certificate, not "${role ?? ''}"`);
    const { values } = parseArgs({
      args: rest,
      options: {
        id: { type: 'string' },
        xds: { type: 'string', default: '127.0.0.1:18000' },
        'admin-port': { type: 'string', default: '19000' },
        'out-dir': { type: 'string' },
        'tls-dir': { type: 'string' },
        'xds-server-name': { type: 'string' },
        insecure: { type: 'boolean', default: false },
        concurrency: { type: 'string' },
        'xds-api': { type: 'string', default: 'delta' },
      },
    });
    if (!values.id) throw new UsageError('--id is required');
    const xdsApi = values['xds-api'];
    if (xdsApi !== 'delta' && xdsApi !== 'sotw') throw new UsageError(`--xds-api: "${xdsApi}" is not delta or sotw`);
    const api: XdsApi = xdsApi;
    const options = {
      id: values.id,
      xds: hostPort('xds', values.xds),
      adminPort: positiveInt('admin-port', values['admin-port']),
      concurrency: values.concurrency === undefined ? undefined : positiveInt('concurrency', values.concurrency),
      xdsApi: api,
    };
    const tlsDir = values['tls-dir'];
    if (!tlsDir && !values.insecure) throw new UsageError('--tls-dir is required (or --insecure for a plaintext xDS connection)');
    if (tlsDir && values.insecure) throw new UsageError('--tls-dir and --insecure exclude each other');
    const outDir = values['out-dir'];
    if (outDir) {
      const tls = tlsDir ? { dir: tlsDir, serverName: values['xds-server-name'] ?? options.xds.address } : undefined;
      const path = writeBootstrap({ ...options, role, outDir, tls });
      process.stderr.write(`wrote ${path}\n`);
    } else if (!tlsDir) {
      process.stdout.write(renderBootstrap(BUILDERS[role](options)));
    } else {
      throw new UsageError('--tls-dir needs --out-dir (the bootstrap and its secrets file are two files)');
    }
    return 0;
  } catch (error) {
    process.stderr.write(`agent-bootstrap: ${error instanceof Error ? error.message : String(error)}\n`);
    return error instanceof UsageError || (error instanceof TypeError && 'code' in error) ? 2 : 1;
  }
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
