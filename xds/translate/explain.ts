// `xds route HOST:PORT`: where a CONNECT to that destination goes, decided from the same admission and
// settings the cloud Envoy's routes are built from, in the order Envoy matches them: a node's name or
// address (exact authorities), a cloud node's name, then address ranges (edge pod CIDRs down their
// node's tunnel, cloud ranges dialed directly), narrowest first. Pure, so it is tested like the
// translator and answers for whatever the server last published.

import { isIP } from 'node:net';
import { cidrContains, parseCidr, type Cidr } from '../model/cidr.js';
import { routingHosts, type InputError } from '../model/node.js';
import { allowedPortsOf, type Settings } from '../model/settings.js';
import type { Admission } from './admission.js';

export type RouteExplanation =
  | { readonly verdict: 'tunnel'; readonly node: string; readonly match: string }
  | { readonly verdict: 'direct'; readonly dial: string; readonly match: string }
  | { readonly verdict: 'refused'; readonly reason: string };

type Routed = Exclude<RouteExplanation, { verdict: 'refused' }>;

interface Candidate {
  readonly cidr: Cidr;
  readonly ports: readonly number[] | 'any';
  readonly result: Routed;
}

/** Splits "host:port" or "[v6]:port"; undefined when it is neither. */
export function splitAuthority(target: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(target.trim());
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) return undefined;
  return { host: (match[1] ?? match[2]).toLowerCase(), port };
}

function portsText(ports: readonly number[]): string {
  return ports.join(', ');
}

export function explainRoute(admission: Admission, settings: Settings, target: string): RouteExplanation {
  const authority = splitAuthority(target);
  if (!authority) return { verdict: 'refused', reason: `"${target}" is not HOST:PORT` };
  const { host, port } = authority;
  const direct = settings.cloudDestinations === 'direct';

  const edge = admission.edgeNodes.find((node) => routingHosts(node).includes(host));
  if (edge) {
    const ports = allowedPortsOf(edge.kubeletPort, settings);
    return ports.includes(port)
      ? { verdict: 'tunnel', node: edge.name, match: `${host === edge.name.toLowerCase() ? 'the name' : 'an address'} of edge node ${edge.name}` }
      : { verdict: 'refused', reason: `port ${port} is not allowed on edge node ${edge.name} (allowed: ${portsText(ports)})` };
  }
  const cloudByName = isIP(host) === 0 ? admission.cloudNodes.find((node) => routingHosts(node).includes(host)) : undefined;
  if (cloudByName) {
    const ip = cloudByName.addresses.find((a) => isIP(a) === 4);
    const ports = allowedPortsOf(cloudByName.kubeletPort, settings);
    if (!direct) return { verdict: 'refused', reason: `${host} is cloud node ${cloudByName.name}, and cloud destinations are refused (--cloud-destinations refuse)` };
    if (!ip) return { verdict: 'refused', reason: `cloud node ${cloudByName.name} has no IPv4 address to dial` };
    return ports.includes(port)
      ? { verdict: 'direct', dial: `${ip}:${port}`, match: `the name of cloud node ${cloudByName.name}` }
      : { verdict: 'refused', reason: `port ${port} is not allowed on cloud node ${cloudByName.name} by name (allowed: ${portsText(ports)}; its addresses take any port)` };
  }
  if (isIP(host) === 6) return { verdict: 'refused', reason: 'IPv6 destinations are not routed' };

  const candidates: Candidate[] = [
    ...admission.edgeNodes.flatMap((node) =>
      node.podCIDRs.flatMap((text) => parseCidr(text) ?? []).map((cidr) => ({
        cidr,
        ports: settings.podPorts,
        result: { verdict: 'tunnel' as const, node: node.name, match: `the pod CIDR ${cidr.text} of edge node ${node.name}` },
      })),
    ),
    ...(direct ? admission.cloudRanges.map((range) => ({ cidr: range.cidr, ports: 'any' as const, result: { verdict: 'direct' as const, dial: `${host}:${port}`, match: `${range.owner} ${range.cidr.text}` } })) : []),
  ];
  const containing = candidates.filter((c) => c.cidr.family === 4 && cidrContains(c.cidr, host)).sort((a, b) => b.cidr.prefix - a.cidr.prefix);
  const taken = containing.find((c) => c.ports === 'any' || c.ports.includes(port));
  if (taken) return taken.result;
  if (containing.length > 0) {
    const narrowest = containing[0];
    const ports = narrowest.ports === 'any' ? 'any' : portsText(narrowest.ports) || 'none (--pod-ports)';
    return { verdict: 'refused', reason: `port ${port} is not allowed in ${narrowest.result.match} (allowed: ${ports})` };
  }
  if (!direct && admission.cloudRanges.some((range) => cidrContains(range.cidr, host))) {
    return { verdict: 'refused', reason: `${host} is in the cluster's cloud ranges, and cloud destinations are refused (--cloud-destinations refuse)` };
  }
  const contested = admission.errors.filter((error: InputError) => error.message.includes(`"${host}"`));
  if (contested.length > 0) return { verdict: 'refused', reason: contested.map((e) => `${e.path}: ${e.message}`).join('; ') };
  return { verdict: 'refused', reason: `${host} is no edge node's name or address, no edge pod's, and in none of the cluster's ranges` };
}
