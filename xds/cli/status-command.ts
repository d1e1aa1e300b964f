// `xds status`: every proxy connected to any of the given replicas, with what it was sent, what it
// ACKed and its last NACK; stale and NACKing proxies and edge nodes without a connected proxy flagged.
// Exit status 3 when anything is wrong, so it can gate a rollout.

import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { fleetStatus, type FleetStatus, type ReplicaStatus } from '../server/status.js';
import { UsageError, positiveInt } from './args.js';
import { ADMIN_HELP, ADMIN_OPTIONS, PROBLEM_EXIT, adminTargets, getFromAdmin } from './admin-client.js';

export const STATUS_HELP = `xds status: every proxy connected to the xDS server's replicas, and what is wrong

${ADMIN_HELP}
                           (--admin takes one URL per replica, comma-separated; in a cluster
                           --admin-service edge-tunnel/edge-tunnel-xds finds every replica)
  -o, --output FORMAT      table (default), json or yaml
  --stale-after SECONDS    a response not ACKed for this long is stale (default 15)

Per proxy: replica, role, proxy, Envoy version, ADS flavour (delta or sotw) and, per type, ACKED/REQUESTED/NACKED with the version
ACKed. Below the table, every problem: a NACK with Envoy's error, a stale type, an edge node that is
served but has no edge proxy connected to any replica. Exit status 0 when there is none, 3 when there
is any, 1 when a replica cannot be reached.
`;

const TYPES = ['Cluster', 'Listener', 'RouteConfiguration', 'VirtualHost', 'Secret'] as const;
const SHORT: Record<(typeof TYPES)[number], string> = { Cluster: 'CDS', Listener: 'LDS', RouteConfiguration: 'RDS', VirtualHost: 'VHDS', Secret: 'SDS' };

function table(status: FleetStatus): string {
  const header = ['REPLICA', 'ROLE', 'PROXY', 'ENVOY', 'API', ...TYPES.map((t) => SHORT[t]), 'HEALTH'];
  const rows = status.proxies.map((p) => [
    p.replica,
    p.role,
    p.proxy,
    p.envoyVersion ?? '-',
    p.api ?? '-',
    ...TYPES.map((t) => {
      const ledger = p.types[t];
      return ledger ? `${ledger.status}${ledger.ackedVersion ? ` ${ledger.ackedVersion.slice(0, 8)}` : ''}` : '-';
    }),
    p.health,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const problems = status.problems.map((p) => `${p.kind.toUpperCase().padEnd(8)} ${p.where}: ${p.detail}`);
  const replicas = `replicas: ${status.replicas.map((r) => `${r.replica}${r.url ? ` (${r.url})` : ''} ${r.proxies} proxies`).join(', ')}`;
  return [replicas, '', line(header), ...rows.map(line), '', problems.length === 0 ? 'no problems' : problems.join('\n'), ''].join('\n');
}

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...ADMIN_OPTIONS,
      output: { type: 'string', short: 'o', default: 'table' },
      'stale-after': { type: 'string', default: '15' },
    },
  });
  if (!['table', 'json', 'yaml'].includes(values.output)) throw new UsageError('-o must be table, json or yaml');
  const staleAfterMs = positiveInt('stale-after', values['stale-after']) * 1000;
  const targets = await adminTargets(values);
  const replicas = await Promise.all(targets.map(async (target) => ({ ...(JSON.parse(await getFromAdmin(target, '/status')) as ReplicaStatus), url: target.url })));
  const status = fleetStatus(replicas, new Date(), staleAfterMs);
  const out = values.output === 'json' ? `${JSON.stringify(status, null, 2)}\n` : values.output === 'yaml' ? stringify(status) : table(status);
  process.stdout.write(out);
  return status.problems.length > 0 ? PROBLEM_EXIT : 0;
}
