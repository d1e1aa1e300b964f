// The integration test harness: processes, Envoy, a stand-in kubelet and the CONNECT client.
export { freePort } from './ports.js';
export { delay, waitFor, type Probe, type WaitOptions } from './wait.js';
export {
  ProcessSet,
  runDir,
  startProcess,
  type ExitInfo,
  type ProcessHandle,
  type ProcessOptions,
} from './processes.js';
export {
  EnvoyAdmin,
  envoyBinary,
  parseStats,
  startEnvoy,
  type AdminResponse,
  type EnvoyInstance,
  type EnvoyOptions,
} from './envoy.js';
export {
  blobChunks,
  blobSha256,
  startStandInKubelet,
  startStandInKubeletProcess,
  type StandInKubelet,
  type StandInKubeletOptions,
} from './kubelet.js';
export {
  getThroughProxy,
  httpsThroughTunnel,
  openConnect,
  type ConnectOptions,
  type ConnectResult,
  type ProxyAddress,
  type TunnelRequest,
  type TunnelResponse,
} from './connect.js';
export {
  TunnelSession,
  envoyCertificates,
  envoyOwnSerials,
  normalizeSerial,
  presentedSerial,
  serialOfPem,
  type EnvoyCertificateInfo,
  type PresentedCertificateOptions,
  type SessionResponse,
} from './certificates.js';
export { createPodNetwork, type PodNetwork } from './netns.js';
export { startConnectTerminator } from './terminator.js';
export {
  ToxiproxyClient,
  listenPort,
  startToxiproxy,
  toxiproxyBinary,
  type BandwidthToxic,
  type LatencyToxic,
  type ResetPeerToxic,
  type TimeoutToxic,
  type Toxic,
  type ToxicSpec,
  type ToxicStream,
  type ToxiproxyInstance,
  type ToxiproxyOptions,
  type ToxiproxyProxy,
} from './toxiproxy.js';
export { monitor, type Monitor } from './monitor.js';
