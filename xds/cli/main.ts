#!/usr/bin/env node
// The `xds` command: serve the control plane, or audit it with dump and route.

import { DIFF_HELP, diffCommand } from './diff-command.js';
import { DUMP_HELP, dumpCommand } from './dump-command.js';
import { ROUTE_HELP, routeCommand } from './route-command.js';
import { SERVE_HELP, serveCommand } from './serve-command.js';
import { STATUS_HELP, statusCommand } from './status-command.js';
import { UsageError } from './args.js';

const USAGE = `usage: xds <command> [flags]

commands:
  serve   run the control plane
  dump    print what the server holds for a proxy and what it acknowledged
  route   say where a CONNECT to HOST:PORT goes, or why it is refused
  status  every connected proxy of every replica, and what is wrong (exit 3 if anything)
  diff    compare what the server intends for a proxy with what that Envoy runs (exit 3 if not)

xds <command> --help shows a command's flags. Exit codes: 0 ok, 1 failure, 2 usage error.
`;

/** A command may resolve to its exit status; anything else means 0. */
const commands: Record<string, { run: (argv: string[]) => Promise<unknown>; help: string }> = {
  serve: { run: serveCommand, help: SERVE_HELP },
  dump: { run: dumpCommand, help: DUMP_HELP },
  route: { run: routeCommand, help: ROUTE_HELP },
  status: { run: statusCommand, help: STATUS_HELP },
  diff: { run: diffCommand, help: DIFF_HELP },
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const command = name === undefined ? undefined : commands[name];
  if (!command) {
    process.stderr.write(name === undefined || name === '--help' || name === '-h' ? USAGE : `unknown command "${name}"\n\n${USAGE}`);
    return name === '--help' || name === '-h' ? 0 : 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.help);
    return 0;
  }
  try {
    const status = await command.run(rest);
    return typeof status === 'number' ? status : 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`xds ${name}: ${message}\n`);
    if (error instanceof UsageError || (error instanceof TypeError && 'code' in error)) {
      process.stderr.write(command.help);
      return 2;
    }
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  if (code !== 0) process.exit(code);
});
