// Runs one stand-in kubelet as its own process (inside a pod network namespace, say) until killed.

import { parseArgs } from 'node:util';
import { startStandInKubelet } from './kubelet.js';

const { values } = parseArgs({ options: { node: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' } } });
if (!values.node || !values.host || !values.port) {
  process.stderr.write('usage: stand-in-kubelet-main --node NAME --host IP --port N\n');
  process.exit(2);
}
const kubelet = await startStandInKubelet({ node: values.node, host: values.host, port: Number(values.port) });
process.stdout.write(`listening on ${values.host}:${kubelet.port}\n`);
process.on('SIGTERM', () => void kubelet.close().then(() => process.exit(0)));
