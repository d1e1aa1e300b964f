// The sidecar's resources. A cloud client that cannot use a CONNECT proxy (metrics-server dials each
// kubelet at its InternalIP itself) runs beside an Envoy; the pod's iptables rules redirect its
// connections to kubelet ports to that Envoy's capture listener, which recovers the original
// destination and carries the connection over CONNECT, with mutual TLS, to the cloud Envoy. The cloud
// Envoy then routes it like any other CONNECT: down an edge's tunnel, or directly to a cloud node.

import type { Any } from '../../envoy/generated/google/protobuf/any.js';
import { pack } from '../../envoy/registry.js';
import type { Settings } from '../model/settings.js';
import { STREAM_IDLE_TIMEOUT_S, fixedEndpointsCluster, seconds } from './common.js';
import { SIDECAR } from './names.js';
import { SECRETS, certificateSecret, toCloudTls, trustSecret } from './tls.js';

/** 127.0.0.1:<capturePort>: redirected connections arrive here with their original destination restored. */
export function captureListener(settings: Settings): Any {
  return pack('envoy.config.listener.v3.Listener', {
    name: SIDECAR.captureListener,
    address: { socketAddress: { address: '127.0.0.1', portValue: settings.sidecar.capturePort } },
    listenerFilters: [
      {
        name: 'envoy.filters.listener.original_dst',
        typedConfig: pack('envoy.extensions.filters.listener.original_dst.v3.OriginalDst', {}),
      },
    ],
    filterChains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.tcp_proxy',
            typedConfig: pack('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', {
              statPrefix: SIDECAR.captureListener,
              cluster: SIDECAR.connectCluster,
              idleTimeout: seconds(STREAM_IDLE_TIMEOUT_S),
              // CONNECT <original destination>: the cloud Envoy decides where that may go.
              tunnelingConfig: { hostname: '%DOWNSTREAM_LOCAL_ADDRESS%' },
            }),
          },
        ],
      },
    ],
  });
}

/** The cloud Envoy's CONNECT listener; with TLS the sidecar presents a CONNECT client certificate. */
export function connectCluster(settings: Settings): Any {
  return pack('envoy.config.cluster.v3.Cluster', {
    ...fixedEndpointsCluster(SIDECAR.connectCluster, [settings.sidecar.connectDial], 5),
    transportSocket: toCloudTls(settings.tls, SECRETS.sidecarIdentity),
  });
}

export function sidecarSecrets(settings: Settings): [string, Any][] {
  const dir = settings.sidecar.tlsDir;
  return [
    [SECRETS.sidecarIdentity, certificateSecret(SECRETS.sidecarIdentity, dir)],
    [SECRETS.cloudCa, trustSecret(SECRETS.cloudCa, dir, 'ca.crt')],
  ];
}
