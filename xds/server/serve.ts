// Starts the control plane: a node source feeding the translator and cache, the ADS gRPC server and
// the admin endpoint. Nothing is served to proxies before the first node list is in.

import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { Ledger } from '../cache/ledger.js';
import { SnapshotCache } from '../cache/snapshot-cache.js';
import type { Settings } from '../model/settings.js';
import * as grpc from '@grpc/grpc-js';
import { listenAds, serverTlsCredentials } from '../protocol/ads-server.js';
import { ledgerMetrics, protocolMetrics } from '../protocol/metrics.js';
import type { ListSource, NodeSource } from '../sources/source.js';
import type { TunnelHealthMonitor } from '../tunnel-health/monitor.js';
import type { LeaseElection } from '../leader-election/lease.js';
import type { CertificateRequestView } from '../certificates/requests.js';
import type { EdgeCertificateSigner } from '../certificates/signer.js';
import { Counter } from 'prom-client';
import type { Server } from 'node:http';
import { ADMIN_PATHS, adminServer, secureAdminServer } from './admin.js';
import type { AdminAuthMode, TokenAuthorizer } from './admin-auth.js';
import { certificateMetrics } from './certificate-metrics.js';
import { ControlPlane, controlPlaneMetrics } from './control-plane.js';

export interface ServeOptions {
  readonly source: NodeSource;
  /** The cluster's Service CIDRs (ServiceCIDR objects), when watching a cluster. */
  readonly serviceCidrSource?: ListSource<readonly string[]>;
  readonly settings: Settings;
  readonly logger: Logger;
  /** host:port for the ADS gRPC server (port 0 picks one). */
  readonly xdsListen: string;
  readonly adminHost: string;
  readonly adminPort: number;
  /** The xDS server's own TLS directory (tls.crt, tls.key, ca.crt); undefined only in insecure mode. */
  readonly tlsDir: string | undefined;
  /** Metrics registry shared with the source (a new one when omitted). */
  readonly registry?: Registry;
  /** This replica's name in `xds status` (default: the host name, which is the pod name in a cluster). */
  readonly replicaId?: string;
  /** The secure admin listener (HTTPS, authenticated), beside the loopback one. */
  readonly secureAdmin?: {
    readonly host: string;
    readonly port: number;
    /** tls.crt, tls.key; ca.crt: the CA of admin client certificates. */
    readonly tlsDir: string;
    readonly modes: readonly AdminAuthMode[];
    readonly tokens?: TokenAuthorizer;
  };
  /** The server's own certificate directories by purpose, for their expiry metric. */
  readonly certificateDirs?: Readonly<Record<string, string | undefined>>;
  /** Probes every edge's tunnels through every cloud Envoy and reports each node's status (EdgeTunnelReady). */
  readonly tunnelHealth?: { readonly monitor: TunnelHealthMonitor };
  /** Approves and signs edge certificate requests (CSR API), fed by the requests' watch. */
  readonly certificates?: { readonly source: ListSource<CertificateRequestView | undefined>; readonly signer: EdgeCertificateSigner };
  /** Decides which replica does the fleet-wide work (the tunnel prober); started with the server. */
  readonly leaderElection?: LeaseElection;
}

/** How long the first ServiceCIDR list may delay the start. */
const SERVICE_CIDR_WAIT_MS = 5000;

export interface RunningServer {
  readonly xdsPort: number;
  readonly adminPort: number;
  /** The secure admin listener's port, when there is one. */
  readonly secureAdminPort?: number;
  close(): Promise<void>;
}

export async function serve(options: ServeOptions): Promise<RunningServer> {
  const { logger, settings } = options;
  const registry = options.registry ?? new Registry();
  collectDefaultMetrics({ register: registry });
  const cache = new SnapshotCache();
  const ledger = new Ledger();
  const controlPlane = new ControlPlane(cache, settings, logger, controlPlaneMetrics(registry));
  ledgerMetrics(registry, ledger);
  certificateMetrics(registry, options.certificateDirs ?? { xds: options.tlsDir });
  let ready = false;
  // Service CIDRs first, so the first configuration already routes Services; a cluster without the
  // ServiceCIDR API (or RBAC for it) must not keep the server from starting: it goes on retrying,
  // and --service-cidrs covers the ranges meanwhile.
  if (options.serviceCidrSource) {
    const first = options.serviceCidrSource.start((lists) => controlPlane.updateServiceCidrs([...new Set(lists.flat())].sort()));
    const waited = await Promise.race([first.then(() => true), delay(SERVICE_CIDR_WAIT_MS).then(() => false)]);
    if (!waited) logger.warn({ waitedMs: SERVICE_CIDR_WAIT_MS }, 'no ServiceCIDR list yet: starting with --service-cidrs only, Services are added when the list arrives');
  }
  await options.source.start((nodes) => {
    ready = controlPlane.update(nodes) || ready;
    options.tunnelHealth?.monitor.setNodes(controlPlane.edgeNodes());
    options.certificates?.signer.retainNodes(controlPlane.edgeNodes());
  });
  if (!ready) throw new Error('the first node list could not be served (see the errors above)');
  options.leaderElection?.start();
  options.tunnelHealth?.monitor.start();
  // The requests' first list is not waited for: edges already holding certificates need nothing from
  // it, and a cluster refusing the watch must not keep the server from serving configuration.
  if (options.certificates) {
    const { source, signer } = options.certificates;
    source.start((requests) => signer.setRequests(requests)).catch((error: unknown) => logger.error({ error: String(error) }, 'certificate requests cannot be watched: no edge certificate is signed'));
    signer.start();
  }

  const { server, port: xdsPort } = await listenAds(
    {
      watcher: cache,
      ledger,
      logger: logger.child({ component: 'ads' }),
      metrics: protocolMetrics(registry),
      onConnect: (identity) => controlPlane.checkProxy(identity),
    },
    options.xdsListen,
    options.tlsDir ? serverTlsCredentials(options.tlsDir) : grpc.ServerCredentials.createInsecure(),
  );
  // Ready once a configuration from a fresh node list is published, and only while the node source
  // stays current. A failing ServiceCIDR watch does not count: --service-cidrs covers it, and clusters
  // without that API would never be ready (it shows in xds_kubernetes_watch_up{resource="servicecidrs"}).
  const notReady = (): string | undefined => (ready ? options.source.problem() : 'no node list published yet');
  const deps = {
    cache,
    ledger,
    registry,
    notReady,
    refusedInput: () => controlPlane.refusedInput(),
    explain: (target: string) => controlPlane.explain(target),
    replicaId: options.replicaId ?? hostname(),
    signerStatus: options.certificates && (() => options.certificates?.signer.status()),
  };
  const admin = await listen(adminServer(deps), options.adminPort, options.adminHost);
  const secure = options.secureAdmin && (await listen(secureAdminServer(deps, { ...options.secureAdmin, onDecision: adminAccessLog(logger, registry) }), options.secureAdmin.port, options.secureAdmin.host));
  const adminPort = (admin.address() as AddressInfo).port;
  const secureAdminPort = secure && (secure.address() as AddressInfo).port;
  logger.info({ xds: `${options.xdsListen.replace(/:\d+$/, '')}:${xdsPort}`, admin: `${options.adminHost}:${adminPort}`, ...(secure && { secureAdmin: `${options.secureAdmin?.host}:${secureAdminPort}` }) }, 'xDS server listening');

  return {
    xdsPort,
    adminPort,
    secureAdminPort,
    async close() {
      await options.tunnelHealth?.monitor.stop();
      await options.certificates?.source.stop();
      await options.certificates?.signer.stop();
      await options.leaderElection?.stop();
      await options.source.stop();
      await options.serviceCidrSource?.stop();
      for (const server of [admin, secure]) {
        server?.closeAllConnections();
        server?.close();
      }
      // forceShutdown ends open ADS streams at once; proxies keep their config and reconnect elsewhere.
      server.forceShutdown();
    },
  };
}

async function listen(server: Server, port: number, host: string): Promise<Server> {
  server.listen(port, host);
  await once(server, 'listening');
  return server;
}

/** Refusals on the secure admin listener are logged (an operator's token lacking a grant shows why) and all decisions counted. */
function adminAccessLog(logger: Logger, registry: Registry): (decision: { path: string; allowed: boolean; user?: string; reason?: string }) => void {
  const requests = new Counter({ name: 'xds_admin_requests_total', help: 'Requests to the secure admin listener by path and decision', labelNames: ['path', 'decision'], registers: [registry] });
  return ({ path, allowed, user, reason }) => {
    // Known endpoints only as label values: a client must not create series with made-up paths.
    requests.inc({ path: ADMIN_PATHS.has(path) ? path : 'other', decision: allowed ? 'allowed' : 'refused' });
    if (!allowed) logger.info({ path, reason }, 'admin request refused');
    else logger.debug({ path, user }, 'admin request allowed');
  };
}
