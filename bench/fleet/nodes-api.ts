// Node objects in a real kube-apiserver, many at once, for the fleet benchmark: created with their
// status (the API lets a Node carry status on create, as a kubelet registers), and re-addressed through
// the status subresource, as a kubelet reports a new InternalIP. Kept-alive HTTPS with the admin token.

import { Agent, request } from 'node:https';
import { DEFAULT_EDGE_SELECTOR } from '../../xds/sources/kubernetes.js';

export const KUBELET_PORT = 10250;

/** The InternalIP of fleet node i (10.0.0.0/8, one address each). */
export function fleetAddress(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

export function fleetNodeName(i: number): string {
  return `edge-${String(i).padStart(5, '0')}`;
}

export class NodesApi {
  // The benchmark's own loopback API server, whose serving CA it made up: not verified.
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 32, rejectUnauthorized: false });

  constructor(
    private readonly url: string,
    private readonly token: string,
  ) {}

  private call(method: string, path: string, body: object, contentType = 'application/json'): Promise<void> {
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.url}${path}`,
        { method, agent: this.agent, headers: { authorization: `Bearer ${this.token}`, 'content-type': contentType, 'content-length': Buffer.byteLength(payload) } },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const status = response.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve();
            else reject(new Error(`${method} ${path}: HTTP ${status}: ${Buffer.concat(chunks).toString('utf8').slice(0, 300)}`));
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Creates edge Nodes named `names[i]` at `fleetAddress(i)`, `parallel` requests at a time. */
  async create(names: readonly string[], progress: (done: number) => void, parallel = 16): Promise<void> {
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      while (next < names.length) {
        const i = next++;
        await this.call('POST', '/api/v1/nodes', {
          apiVersion: 'v1',
          kind: 'Node',
          metadata: { name: names[i], labels: { [DEFAULT_EDGE_SELECTOR]: '' } },
          status: { addresses: [{ type: 'InternalIP', address: fleetAddress(i) }], daemonEndpoints: { kubeletEndpoint: { Port: KUBELET_PORT } } },
        });
        if (++done % 1000 === 0) progress(done);
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
  }

  /** Gives a Node a new InternalIP, as its kubelet would report one. */
  readdress(name: string, address: string): Promise<void> {
    return this.call('PATCH', `/api/v1/nodes/${name}/status`, { status: { addresses: [{ type: 'InternalIP', address }] } }, 'application/merge-patch+json');
  }

  close(): void {
    this.agent.destroy();
  }
}
