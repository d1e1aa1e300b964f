#!/usr/bin/env node
// agent-bootstrap: writes the Envoy bootstrap for an edge node or a cloud replica (the DaemonSet's init
// step; the demo and the tests use the same code).

import { parseArgs } from 'node:util';
import { UsageError, hostPort, positiveInt } from '../xds/cli/args.js';
import { cloudBootstrap, edgeBootstrap, renderBootstrap } from './bootstrap.js';
import { writeBootstrap } from './write.js';

const HELP = `usage: agent-bootstrap edge|cloud [flags]

  edge    bootstrap for the edge Envoy of one node (reverse-tunnel initiator)
  cloud   bootstrap for a cloud Envoy replica (reverse-tunnel responder, CONNECT entry)

  --id ID             edge: the Kubernetes node name; cloud: this replica's id (required)
  --xds HOST:PORT     the xDS server (default 127.0.0.1:18000)
  --admin-port N      Envoy admin port on 127.0.0.1 (default 19000)
  --concurrency N     the --concurrency Envoy runs with, declared to the xDS server (which warns
                      when a cloud Envoy has more workers than tunnels per edge)
  --tls-dir DIR       mutual TLS to the xDS server: DIR holds tls.crt, tls.key (this proxy's
                      certificate) and ca.crt (the xDS server's CA); files are watched, so
                      rotating them needs no restart
  --xds-server-name N the name the xDS server's certificate carries (default: the --xds host)
  --out-dir DIR       write DIR/envoy.yaml (and, with TLS, the *.sds.yaml files it reads); required with --tls-dir
  --insecure          plaintext to the xDS server (debugging on a trusted host only); without
                      --tls-dir or --insecure the command refuses to run, and prints the
                      bootstrap to standard output only in insecure mode

Exit codes: 0 ok, 1 failure, 2 usage error.
`;

function main(argv: string[]): number {
  const [role, ...rest] = argv;
  if (role === '--help' || role === '-h' || rest.includes('--help')) {
    process.stdout.write(HELP);
    return 0;
  }
  try {
    if (role !== 'edge' && role !== 'cloud') throw new UsageError(`first argument must be edge or cloud, not "${role ?? ''}"`);
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
      },
    });
    if (!values.id) throw new UsageError('--id is required');
    const options = {
      id: values.id,
      xds: hostPort('xds', values.xds),
      adminPort: positiveInt('admin-port', values['admin-port']),
      concurrency: values.concurrency === undefined ? undefined : positiveInt('concurrency', values.concurrency),
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
      process.stdout.write(renderBootstrap(role === 'edge' ? edgeBootstrap(options) : cloudBootstrap(options)));
    } else {
      throw new UsageError('--tls-dir needs --out-dir (the bootstrap and its secrets file are two files)');
    }
    return 0;
  } catch (error) {
    process.stderr.write(`agent-bootstrap: ${error instanceof Error ? error.message : String(error)}\n`);
    return error instanceof UsageError || (error instanceof TypeError && 'code' in error) ? 2 : 1;
  }
}

process.exitCode = main(process.argv.slice(2));
