#!/usr/bin/env node
// connect-terminator: the half-close-correct CONNECT terminator that runs beside each edge Envoy
// (see terminator.ts for why). Logs JSON lines (pino) to standard error; stops on SIGTERM/SIGINT.

import { existsSync, lstatSync, rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { UsageError, hostPort, positiveInt } from '../xds/cli/args.js';
import { metricsServer, terminatorRegistry } from './metrics.js';
import { startTerminator } from './terminator.js';

const HELP = `usage: connect-terminator --listen PATH|HOST:PORT [flags]

Takes HTTP/2 CONNECT streams from the edge Envoy and forwards each as TCP to the host:port it names,
passing TCP half-close both ways (the target's FIN ends the stream with END_STREAM; no reset), so a
kubelet that closes first never loses the tail of its output.

  --listen PATH|HOST:PORT  a Unix socket path (deployments: shared only with the edge Envoy) or a
                           loopback host:port (tests); an existing socket file is replaced
  --dial-timeout-ms N      how long a target may take to accept (default 5000; then 504)
  --stream-window N        HTTP/2 stream window granted to Envoy, bytes (default 1048576)
  --metrics HOST:PORT      serve Prometheus metrics at http://HOST:PORT/metrics (default: none)
  --log-level LEVEL        pino level (default info)

Exit codes: 0 stopped by a signal, 1 failure, 2 usage error.
`;

// Within the DaemonSet's terminationGracePeriodSeconds (15): a rollout lets short exchanges finish.
const SHUTDOWN_GRACE_MS = 10_000;

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        listen: { type: 'string' },
        'dial-timeout-ms': { type: 'string', default: '5000' },
        'stream-window': { type: 'string', default: String(1024 * 1024) },
        'log-level': { type: 'string', default: 'info' },
        metrics: { type: 'string' },
      },
    }));
    if (!values.listen) throw new UsageError('--listen is required');
    if (values.metrics !== undefined) hostPort('metrics', values.metrics);
  } catch (error) {
    process.stderr.write(`connect-terminator: ${(error as Error).message}\n${HELP}`);
    return 2;
  }
  const log = pino({ level: values['log-level'], base: { component: 'connect-terminator' } }, pino.destination(2));
  try {
    const listen = values.listen;
    // A socket left by an earlier run is replaced; any other file at that path is not ours to delete.
    if (listen.includes('/') && existsSync(listen)) {
      if (!lstatSync(listen).isSocket()) throw new UsageError(`--listen ${listen} exists and is not a socket`);
      rmSync(listen);
    }
    const terminator = await startTerminator({
      listen,
      log,
      dialTimeoutMs: positiveInt('dial-timeout-ms', values['dial-timeout-ms']),
      streamWindowBytes: positiveInt('stream-window', values['stream-window']),
    });
    const metrics = values.metrics === undefined ? undefined : metricsServer(terminatorRegistry(terminator.stats));
    if (metrics !== undefined && values.metrics !== undefined) {
      const { address, port } = hostPort('metrics', values.metrics);
      await new Promise<void>((resolve, reject) => metrics.once('error', reject).listen(port, address, resolve));
      log.info({ metrics: values.metrics }, 'serving /metrics');
    }
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    log.info({ stats: terminator.stats }, 'stopping: no new streams, open ones get 10 s to finish');
    metrics?.close();
    await terminator.close(SHUTDOWN_GRACE_MS);
    return 0;
  } catch (error) {
    log.error({ err: error }, 'connect-terminator failed');
    return error instanceof UsageError ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
