// Runs the byte target as its own process (so a benchmark's client does not share its event loop).

import { parseArgs } from 'node:util';
import { startByteTarget } from './byte-target.js';

const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' } } });
const target = await startByteTarget(values.host, Number(values.port));
process.stdout.write(`byte target listening on ${values.host}:${target.port}\n`);
process.on('SIGTERM', () => void target.close().then(() => process.exit(0)));
