// Switching kube-apiserver's `cluster` egress to edge-tunnel must break nothing else in the cluster.
// That egress also carries admission webhooks, aggregated APIs and the service proxy, dialed at Service
// ClusterIPs (or, with --enable-aggregator-routing, at endpoint IPs) of cloud workloads: the cloud
// Envoy dials those itself, while edge pods keep going down their tunnels and anything outside the
// cluster is refused. And a node's own status is untrusted: an edge that claims another's address, a
// Service's or a cloud pod's gets nothing, and costs nobody else anything.
//
// The cloud workload is one HTTPS server (webhook, aggregated API, plain service) in a network
// namespace of its own at a cloud pod IP; its Service's ClusterIP answers in that namespace too, which
// is what kube-proxy would arrange. No controller-manager runs, so the Service's endpoints are written
// by the test.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe } from 'node:test';
import { bundlePaths } from '../certs/bundle.js';
import { waitFor } from './harness/index.js';
import { EdgeCluster } from './kube/edge-cluster.js';
import { stepsWithLogs } from './topology.js';

const NAMESPACE = 'webhook-test';
const CLUSTER_IP = '10.96.0.50';
const CLOUD_POD_IP = '10.245.0.10';
const SERVICE_PORT = 443;
const TARGET_PORT = 8443;
const GROUP = 'demo.edge-tunnel.io';

function cloudObjects(caBundle: string): object[] {
  const service = { namespace: NAMESPACE, name: 'webhook', port: SERVICE_PORT };
  return [
    // A cloud node: its pod CIDR holds the workload's pod IP. Not labelled edge.
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'cloud-1' }, spec: { podCIDR: '10.245.0.0/24', podCIDRs: ['10.245.0.0/24'] } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } },
    // No controller-manager runs, so nothing creates the ServiceAccount a Pod needs.
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: NAMESPACE } },
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'webhook-0', namespace: NAMESPACE },
      spec: { nodeName: 'cloud-1', containers: [{ name: 'webhook', image: 'registry.invalid/webhook:1' }], tolerations: [{ operator: 'Exists' }] },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'webhook', namespace: NAMESPACE },
      spec: { clusterIP: CLUSTER_IP, ports: [{ name: 'https', port: SERVICE_PORT, targetPort: TARGET_PORT, protocol: 'TCP' }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'webhook-1', namespace: NAMESPACE, labels: { 'kubernetes.io/service-name': 'webhook' } },
      addressType: 'IPv4',
      // The service proxy skips endpoints without a target reference.
      endpoints: [{ addresses: [CLOUD_POD_IP], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'webhook-0', namespace: NAMESPACE } }],
      ports: [{ name: 'https', port: TARGET_PORT, protocol: 'TCP' }],
    },
    {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'webhook', namespace: NAMESPACE },
      subsets: [{ addresses: [{ ip: CLOUD_POD_IP, targetRef: { kind: 'Pod', name: 'webhook-0', namespace: NAMESPACE } }], ports: [{ name: 'https', port: TARGET_PORT, protocol: 'TCP' }] }],
    },
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name: 'deny-labelled' },
      webhooks: [
        {
          name: 'deny-labelled.edge-tunnel.io',
          clientConfig: { service: { ...service, path: '/validate' }, caBundle },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NAMESPACE } },
          failurePolicy: 'Fail',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          timeoutSeconds: 10,
        },
      ],
    },
    {
      apiVersion: 'apiregistration.k8s.io/v1',
      kind: 'APIService',
      metadata: { name: `v1alpha1.${GROUP}` },
      spec: { group: GROUP, version: 'v1alpha1', service, caBundle, groupPriorityMinimum: 1000, versionPriority: 15 },
    },
  ];
}

function configMap(name: string, labels: Record<string, string> = {}): object {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NAMESPACE, labels }, data: { a: 'b' } };
}

for (const aggregatorRouting of [false, true]) {
  const dialed = aggregatorRouting ? `${CLOUD_POD_IP}:${TARGET_PORT}` : `${CLUSTER_IP}:${SERVICE_PORT}`;

  describe(`kube-apiserver's whole cluster egress through edge-tunnel (${aggregatorRouting ? 'with' : 'without'} --enable-aggregator-routing)`, { concurrency: false }, () => {
    let edge: EdgeCluster;
    const kubectl = (...args: string[]) => edge.cluster.kubectl(args);
    const step = stepsWithLogs(() => edge?.describeFailure());
    const serviceLog = (): string => edge.topology.processes.handles.find((h) => h.name === 'service-webhook')?.logTail() ?? '';

    before(async () => {
      edge = await EdgeCluster.start({
        nodes: [
          { name: 'edge-a', ip: '192.0.2.11', podCIDR: '198.51.100.0/26' },
          { name: 'edge-b', ip: '192.0.2.12', podCIDR: '198.51.100.64/26' },
        ],
        apiserverArgs: aggregatorRouting ? ['--enable-aggregator-routing=true'] : [],
      });
      await edge.runPod('edge-a', 'app-a');
      await edge.runCloudService({ name: 'webhook', podIp: CLOUD_POD_IP, clusterIp: CLUSTER_IP, dnsNames: [`webhook.${NAMESPACE}.svc`], ports: [SERVICE_PORT, TARGET_PORT] });
      const caBundle = Buffer.from(readFileSync(bundlePaths(edge.topology.certs).ca)).toString('base64');
      for (const object of cloudObjects(caBundle)) await edge.cluster.apply(object);
      // The service proxy only dials an endpoint whose Pod exists with that IP; no kubelet runs on
      // cloud-1, so the Pod's status is written here.
      const podStatus = { status: { phase: 'Running', podIP: CLOUD_POD_IP, podIPs: [{ ip: CLOUD_POD_IP }] } };
      await kubectl('patch', 'pod', 'webhook-0', '-n', NAMESPACE, '--subresource=status', '--type=merge', '-p', JSON.stringify(podStatus));
    });
    after(async () => edge?.stop());

    step('a Service-backed webhook with failurePolicy Fail admits and rejects, dialed directly by the cloud Envoy', async () => {
      // The cloud node (and so its pod range) reaches the routes within a second of its creation.
      await waitFor('a ConfigMap admitted by the webhook', async () => {
        return edge.cluster.apply(configMap('allowed')).then(() => true, () => false);
      }, { timeoutMs: 20_000 });
      const refused = await edge.cluster.apply(configMap('refused', { deny: 'true' })).then(
        () => 'created',
        (error: { stderr?: string }) => error.stderr ?? String(error),
      );
      assert.match(refused, /denied the request: denied by webhook/);
      assert.match(serviceLog(), new RegExp(`POST /validate via ${dialed.replaceAll('.', '\\.')}`), `the webhook was dialed at ${dialed}`);
      // By the cloud Envoy (this host could route to the address itself): its direct cluster dialed it.
      const stats = await edge.topology.cloudAdmin.stats();
      assert.ok((stats.get('cluster.cloud_direct.upstream_cx_total') ?? 0) > 0, 'the cloud Envoy dialed the webhook');
    });

    step('an aggregated APIService answers through it', async () => {
      await waitFor('the APIService Available', async () => {
        const { stdout } = await kubectl('get', 'apiservice', `v1alpha1.${GROUP}`, '-o', 'jsonpath={.status.conditions[?(@.type=="Available")].status}').catch(() => ({ stdout: '' }));
        return stdout === 'True';
      }, { timeoutMs: 30_000 });
      const { stdout } = await kubectl('get', '--raw', `/apis/${GROUP}/v1alpha1`);
      assert.equal((JSON.parse(stdout) as { groupVersion?: string }).groupVersion, `${GROUP}/v1alpha1`);
    });

    step('services/proxy reaches the cloud Service', async () => {
      const { stdout } = await kubectl('get', '--raw', `/api/v1/namespaces/${NAMESPACE}/services/https:webhook:${SERVICE_PORT}/proxy/healthz`);
      assert.equal(stdout, 'ok from webhook\n');
    });

    step('kubectl logs and exec to an edge pod keep working', async () => {
      assert.equal((await kubectl('logs', 'app-a')).stdout, 'hello from a pod on edge-a\n');
      assert.equal((await kubectl('exec', 'app-a', '--', 'sh', '-c', 'echo hello')).stdout, 'hello\n');
    });

    step('a destination outside the cluster is refused at once, never dialed', async () => {
      // Outside every range; next to the cloud pod range; next to the Service CIDR.
      for (const target of ['203.0.113.7:443', '10.246.0.10:8443', '10.97.0.1:443']) {
        const result = await edge.topology.connect(target);
        result.socket.destroy();
        assert.equal(result.status, 404, target);
      }
    });

    if (aggregatorRouting) return;

    step("an edge's status claiming another node's, a Service's and a cloud pod's address takes nothing from anyone", async () => {
      const lie = {
        status: {
          addresses: [
            { type: 'InternalIP', address: '192.0.2.12' },
            { type: 'InternalIP', address: '192.0.2.11' },
            { type: 'ExternalIP', address: CLUSTER_IP },
            { type: 'ExternalIP', address: CLOUD_POD_IP },
            { type: 'Hostname', address: 'not_a_hostname' },
          ],
        },
      };
      await kubectl('patch', 'node', 'edge-b', '--subresource=status', '--type=merge', '-p', JSON.stringify(lie));
      const dump = async (): Promise<string> => (await fetch(`${edge.topology.xdsAdminUrl}/dump?role=cloud`)).text();
      await waitFor('the claims refused in xds dump', async () => {
        const text = await dump();
        return ['192.0.2.11', CLUSTER_IP, CLOUD_POD_IP, 'not_a_hostname'].every((a) => text.includes(`"${a}"`));
      }, { timeoutMs: 15_000 });
      const text = await dump();
      assert.match(text, /edge-b\.addresses\[1\]: "192\.0\.2\.11" is already held by edge-a, which claimed it first/);
      assert.match(text, /edge-b\.addresses\[2\]: "10\.96\.0\.50" is inside the Service CIDR/);
      const metrics = await (await fetch(`${edge.topology.xdsAdminUrl}/metrics`)).text();
      assert.match(metrics, /^xds_refused_node_input [4-9]/m);

      // A new exec (a new tunnel stream, dialed at edge-a's InternalIP) still reaches edge-a.
      assert.equal((await kubectl('exec', 'app-a', '--', 'sh', '-c', 'echo still edge-a')).stdout, 'still edge-a\n');
      assert.equal((await kubectl('logs', 'app-a')).stdout, 'hello from a pod on edge-a\n');
      await edge.cluster.apply(configMap('allowed-after-the-lie'));
      assert.equal((await kubectl('get', '--raw', `/api/v1/namespaces/${NAMESPACE}/services/https:webhook:${SERVICE_PORT}/proxy/healthz`)).stdout, 'ok from webhook\n');
      // edge-b keeps its own tunnel and address.
      assert.equal((await kubectl('get', '--raw', '/api/v1/nodes/edge-b/proxy/healthz')).stdout, 'ok');
    });

    step('a kubelet port outside --kubelet-ports is not routed; the node keeps its tunnel', async () => {
      const port = JSON.stringify({ status: { daemonEndpoints: { kubeletEndpoint: { Port: 12345 } } } });
      await kubectl('patch', 'node', 'edge-b', '--subresource=status', '--type=merge', '-p', port);
      await waitFor('the port refused', async () => (await (await fetch(`${edge.topology.xdsAdminUrl}/dump?role=cloud`)).text()).includes('edge-b.kubeletPort: 12345'), { timeoutMs: 15_000 });
      const result = await edge.topology.connect('192.0.2.12:12345');
      result.socket.destroy();
      assert.equal(result.status, 404);
      assert.equal((await kubectl('exec', 'app-a', '--', 'sh', '-c', 'echo edge-a unaffected')).stdout, 'edge-a unaffected\n');
    });
  });
}
