// The iptables rules that make a pod's connections to kubelet ports go through its edge-tunnel sidecar,
// for clients that cannot use a CONNECT proxy themselves (metrics-server). They are what a service
// mesh's init container does, narrowed to the ports edge-tunnel carries: only outgoing TCP to those
// ports is redirected (to the sidecar's capture listener on 127.0.0.1), never the sidecar's own
// connections (by its user id) and never loopback. The sidecar then carries each connection, with its
// original destination, over CONNECT to the cloud Envoy.

/** The chain edge-tunnel owns in the pod's nat table; re-running replaces it (an init container may restart). */
export const CAPTURE_CHAIN = 'EDGE_TUNNEL_CAPTURE';

export interface CaptureOptions {
  /** Destination ports to capture: kubelet ports, and node ports such as node-exporter's. */
  readonly ports: readonly number[];
  /** The sidecar's capture listener on 127.0.0.1. */
  readonly capturePort: number;
  /** The sidecar's user id, whose own connections must never be captured (omit only when it dials none of the ports). */
  readonly proxyUid?: number;
}

/** The iptables invocations (argument lists) that set the capture up from scratch, idempotently. */
export function captureRules(options: CaptureOptions): string[][] {
  const nat = ['-w', '-t', 'nat'];
  return [
    // Unhook and empty any earlier version of the chain; the first may fail harmlessly on a fresh pod.
    [...nat, '-D', 'OUTPUT', '-p', 'tcp', '-j', CAPTURE_CHAIN],
    [...nat, '-N', CAPTURE_CHAIN],
    [...nat, '-F', CAPTURE_CHAIN],
    ...(options.proxyUid === undefined ? [] : [[...nat, '-A', CAPTURE_CHAIN, '-m', 'owner', '--uid-owner', String(options.proxyUid), '-j', 'RETURN']]),
    [...nat, '-A', CAPTURE_CHAIN, '-d', '127.0.0.0/8', '-j', 'RETURN'],
    ...options.ports.map((port) => [...nat, '-A', CAPTURE_CHAIN, '-p', 'tcp', '--dport', String(port), '-j', 'REDIRECT', '--to-ports', String(options.capturePort)]),
    [...nat, '-A', 'OUTPUT', '-p', 'tcp', '-j', CAPTURE_CHAIN],
  ];
}

/** Invocations whose failure is expected on a fresh pod (the chain is not there yet to unhook or create). */
export function mayFail(args: readonly string[]): boolean {
  return args.includes('-D') || args.includes('-N');
}
