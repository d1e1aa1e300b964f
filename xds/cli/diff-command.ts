// `xds diff`: does an Envoy run what the control plane intends for it? Compares the server's dump of
// that proxy with the Envoy's own /config_dump (its admin endpoint, reached directly or through
// `kubectl port-forward`), prints every difference, and exits 3 when there is any.

import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { XDS_CLIENT_SECRETS } from '../../agent-bootstrap/bootstrap.js';
import { UsageError } from './args.js';
import { ADMIN_HELP, ADMIN_OPTIONS, PROBLEM_EXIT, firstAdminTarget, getFromAdmin } from './admin-client.js';
import { diffConfigs, rejectedListeners, runningResources, type Json } from './config-diff.js';

export const DIFF_HELP = `xds diff: does an Envoy run what the control plane intends for it?

  --role cloud|edge|sidecar which proxy (required)
  --node NAME              the edge node (required with --role edge)
  --envoy URL              that Envoy's admin endpoint (required), e.g. http://127.0.0.1:19000
                           after kubectl port-forward to its pod
${ADMIN_HELP}

Lists, per resource: missing (intended, not running: not received, or rejected), extra (running, not
intended: left over), changed (with the first differing fields). Both sides are compared as protos
(Envoy's snake_case and its spelling of defaults normalised); secrets by presence of their data only,
since Envoy shows loaded files, not their paths. Exit status 0 when they match, 3 when not.
`;

export async function diffCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { role: { type: 'string' }, node: { type: 'string' }, envoy: { type: 'string' }, ...ADMIN_OPTIONS },
  });
  if (values.role !== 'cloud' && values.role !== 'edge' && values.role !== 'sidecar') throw new UsageError('--role must be cloud, edge or sidecar');
  if (values.role === 'edge' && !values.node) throw new UsageError('--role edge needs --node NAME');
  if (!values.envoy) throw new UsageError('--envoy URL (the Envoy admin endpoint) is required');
  const query = { role: values.role, node: values.role === 'edge' ? values.node : undefined, format: 'resources' };
  const intended = parse(await getFromAdmin(await firstAdminTarget(values), '/dump', query)) as Record<string, Json[]>;
  const configDump = JSON.parse(await getFromAdmin(values.envoy, '/config_dump')) as Json;
  const diffs = diffConfigs(intended, runningResources(configDump, Object.values(XDS_CLIENT_SECRETS)));
  const rejected = rejectedListeners(configDump);
  const lines = [
    ...diffs.map((d) => [`${{ missing: '-', extra: '+', changed: '~' }[d.change]} ${d.type} ${d.name} (${d.change})`, ...d.details.map((x) => `    ${x}`)].join('\n')),
    ...rejected.map((l) => `! Listener ${l.name}: Envoy rejected the last update: ${l.detail}`),
  ];
  const total = Object.values(intended).reduce((n, list) => n + list.length, 0);
  process.stdout.write(lines.length === 0 ? `match: the Envoy runs all ${total} intended resources, and nothing else\n` : `${lines.join('\n')}\n`);
  return lines.length === 0 ? 0 : PROBLEM_EXIT;
}
