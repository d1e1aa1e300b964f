// `xds dump`: prints, as YAML, what the running xDS server would send a proxy and what it last ACKed.

import { parseArgs } from 'node:util';
import { UsageError } from './args.js';

export const DUMP_HELP = `xds dump: what the xDS server holds for one proxy, and what that proxy acknowledged

  --role cloud|edge        which proxy (required)
  --node NAME              the edge node (required with --role edge)
  --admin URL              the server's admin endpoint (default http://127.0.0.1:18001)
`;

export async function dumpCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      role: { type: 'string' },
      node: { type: 'string' },
      admin: { type: 'string', default: 'http://127.0.0.1:18001' },
    },
  });
  if (values.role !== 'cloud' && values.role !== 'edge') throw new UsageError('--role must be cloud or edge');
  if (values.role === 'edge' && !values.node) throw new UsageError('--role edge needs --node NAME');
  const url = new URL('/dump', values.admin);
  url.searchParams.set('role', values.role);
  if (values.node) url.searchParams.set('node', values.node);
  const response = await fetch(url).catch((error: unknown) => {
    throw new Error(`cannot reach the xDS server's admin endpoint at ${values.admin}: ${String(error)}`);
  });
  const body = await response.text();
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}: ${body.trim()}`);
  process.stdout.write(body);
}
