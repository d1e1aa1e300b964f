// `xds dump`: prints, as YAML, what the running xDS server would send a proxy and what it last ACKed.

import { parseArgs } from 'node:util';
import { UsageError } from './args.js';
import { ADMIN_HELP, ADMIN_OPTIONS, firstAdminTarget, getFromAdmin } from './admin-client.js';

export const DUMP_HELP = `xds dump: what the xDS server holds for one proxy, and what that proxy acknowledged

  --role cloud|edge|sidecar which proxy (required)
  --node NAME              the edge node (required with --role edge; with --role cloud: only the
                           cloud routes that reach that node); an unknown node is an error
  --type TYPE              only Cluster, Listener, RouteConfiguration, VirtualHost or Secret resources
  --name NAME              only the resource of this name
  --format full|resources  full (default): resources with versions, each connected stream's
                           sent/ACKed/NACKed state and the refused node input; resources: only
                           {Type: [resource]}, the shape of the translator's golden files
Secrets show file paths only; inline key material would be redacted.
${ADMIN_HELP}
`;

export async function dumpCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      role: { type: 'string' },
      node: { type: 'string' },
      type: { type: 'string' },
      name: { type: 'string' },
      format: { type: 'string', default: 'full' },
      ...ADMIN_OPTIONS,
    },
  });
  if (values.role !== 'cloud' && values.role !== 'edge' && values.role !== 'sidecar') throw new UsageError('--role must be cloud, edge or sidecar');
  if (values.role === 'edge' && !values.node) throw new UsageError('--role edge needs --node NAME');
  if (values.format !== 'full' && values.format !== 'resources') throw new UsageError('--format must be full or resources');
  const types = ['Cluster', 'Listener', 'RouteConfiguration', 'VirtualHost', 'Secret'];
  if (values.type !== undefined && !types.includes(values.type)) throw new UsageError(`--type must be one of ${types.join(', ')}`);
  const query = { role: values.role, node: values.node, type: values.type, name: values.name, format: values.format };
  process.stdout.write(await getFromAdmin(await firstAdminTarget(values), '/dump', query));
}
