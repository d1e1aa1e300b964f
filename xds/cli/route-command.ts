// `xds route HOST:PORT`: where a CONNECT to that destination goes with the configuration the server
// last published (the node and its tunnels, a direct dial, or why it is refused).

import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { UsageError } from './args.js';
import { ADMIN_HELP, ADMIN_OPTIONS, PROBLEM_EXIT, firstAdminTarget, getFromAdmin } from './admin-client.js';

export const ROUTE_HELP = `xds route HOST:PORT: where a CONNECT to that destination goes, or why it is refused

  HOST:PORT                what kube-apiserver or Prometheus would send: 192.0.2.11:10250,
                           edge-a:10250, a pod or Service IP with its port
${ADMIN_HELP}

Prints the verdict (tunnel to a node, direct dial, refused) and why, as YAML. Exit status 0 when the
destination is routed, 3 when it is refused.
`;

export async function routeCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...ADMIN_OPTIONS } });
  if (positionals.length !== 1) throw new UsageError('give one destination, HOST:PORT');
  const body = await getFromAdmin(await firstAdminTarget(values), '/route', { target: positionals[0] });
  process.stdout.write(body);
  return (parse(body) as { verdict?: string }).verdict === 'refused' ? PROBLEM_EXIT : 0;
}
