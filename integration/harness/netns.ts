// A pod network for tests: a network namespace holding one pod IP, joined to this host by a veth pair
// and a host route. The pod's server runs inside the namespace, so the IP answers only there, the way
// a pod IP answers only on its node. Needs root (the tests and CI run as root).

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function ip(...args: string[]): Promise<void> {
  await run('ip', args).catch((error: { stderr?: string }) => {
    throw new Error(`ip ${args.join(' ')}: ${error.stderr?.trim() ?? String(error)}`);
  });
}

export interface PodNetwork {
  readonly namespace: string;
  readonly podIp: string;
  /** The host's address on the link, when asked for: what programs in the namespace reach the host by. */
  readonly hostIp?: string;
  /** The command prefix that runs a program inside the namespace. */
  readonly exec: readonly string[];
  remove(): Promise<void>;
}

/** `extraIps` answer in the namespace too (a Service ClusterIP served where its one backend runs). */
export async function createPodNetwork(podIp: string, hostIp?: string, extraIps: readonly string[] = []): Promise<PodNetwork> {
  const id = randomBytes(3).toString('hex');
  const namespace = `et-pod-${id}`;
  const [host, pod] = [`eth${id}h`, `eth${id}p`];
  await ip('netns', 'add', namespace);
  const remove = async (): Promise<void> => {
    await run('ip', ['netns', 'delete', namespace]).catch(() => undefined);
    await run('ip', ['link', 'delete', host]).catch(() => undefined);
  };
  try {
    await ip('link', 'add', host, 'type', 'veth', 'peer', 'name', pod);
    await ip('link', 'set', pod, 'netns', namespace);
    await ip('link', 'set', host, 'up');
    if (hostIp) await ip('addr', 'replace', `${hostIp}/32`, 'dev', host);
    // replace, not add: a run that was killed before its cleanup may have left the route behind.
    for (const address of [podIp, ...extraIps]) await ip('route', 'replace', `${address}/32`, 'dev', host);
    const inside = (...args: string[]): Promise<void> => ip('netns', 'exec', namespace, 'ip', ...args);
    await inside('link', 'set', 'lo', 'up');
    await inside('link', 'set', pod, 'up');
    for (const address of [podIp, ...extraIps]) await inside('addr', 'add', `${address}/32`, 'dev', pod);
    // Replies leave by the veth whatever the source: the host answers ARP for its own addresses.
    await inside('route', 'add', 'default', 'dev', pod);
  } catch (error) {
    await remove();
    throw error;
  }
  return { namespace, podIp, hostIp, exec: ['ip', 'netns', 'exec', namespace], remove };
}
