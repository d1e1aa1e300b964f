#!/usr/bin/env node
// certs: creates the CAs and certificates an edge-tunnel deployment needs (demo, tests, a first
// install), and re-issues single certificates for rotation. ECDSA P-256, short-lived.

import { parseArgs } from 'node:util';
import { UsageError } from '../xds/cli/args.js';
import { bundlePaths, loadBundleAuthority, writeAtomically, writeBundle, writeEdgeCertificate, writeSidecarCertificates } from './bundle.js';
import { issue } from './issue.js';
import { finishRollover, reissueAll, startRollover } from './rollover.js';

const HELP = `usage: certs <command> [flags]

  init     a new bundle: two CAs and every certificate
             --out DIR             where to write it (required)
             --nodes LIST          edge node names, comma-separated
             --cloud-names LIST    names and IPs the cloud Envoy is reached by (edges check them)
                                   (default cloud.edge-tunnel,127.0.0.1)
             --xds-names LIST      names and IPs of the xDS server (default 127.0.0.1)
             --days N              validity of leaf certificates (default 2)
             --ca-days N           validity of the two CAs (default 3650: rotate them by rollover,
                                   not by calendar; a leaf never outlives its CA)
  node     issue or re-issue (rotate) one edge node's certificate with the bundle's CA
             --dir DIR --node NAME [--days N]
  client   issue a CONNECT client certificate (kube-apiserver, Prometheus) with the client CA
             --dir DIR --name NAME --out-dir OUT [--days N]   writes OUT/tls.crt, OUT/tls.key
  reissue  re-issue every certificate the CA signs (cloud, xDS, edge nodes, sidecars' xDS
           identities; with --client-ca: the demo client and sidecars' CONNECT certificates) with the
           same names and new keys, signed by the CA that signs now
             --dir DIR [--client-ca] [--days N]
  rollover roll the CA (or with --client-ca the client CA) with an overlap, never dropping a
           tunnel (README "Certificates"):
             start   --dir DIR [--client-ca] [--ca-days N]   a next CA; its users trust old and next
             (then: certs reissue, and let the new files reach every host)
             finish  --dir DIR [--client-ca]                 the next CA becomes the CA
  sidecar  issue a sidecar's certificates (the Envoy beside metrics-server): its xDS identity and a
           CONNECT client certificate, into DIR/sidecar/NAME/xds/ and DIR/sidecar/NAME/connect/
             --dir DIR --name NAME [--days N]

Layout of a bundle (each component directory holds tls.crt, tls.key, ca.crt, as a Kubernetes TLS Secret):
  ca.crt ca.key                 signs server certificates, edge node certificates and the cloud's
  client-ca.crt client-ca.key   signs CONNECT clients only (an edge node's key is never a client)
  xds/  cloud/  edge/<node>/    per component; cloud/ also has client-ca.crt
  client.crt client.key         a CONNECT client for trying things out

Exit codes: 0 ok, 1 failure, 2 usage error.
`;

const list = (value: string | undefined, fallback: string[]): string[] =>
  value === undefined ? fallback : value.split(',').map((s) => s.trim()).filter(Boolean);

function days(value: string | undefined): number {
  const n = Number(value ?? 2);
  if (!(n > 0)) throw new UsageError(`--days: "${value}" is not a positive number`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      dir: { type: 'string' },
      'out-dir': { type: 'string' },
      nodes: { type: 'string' },
      node: { type: 'string' },
      name: { type: 'string' },
      'cloud-names': { type: 'string' },
      'xds-names': { type: 'string' },
      days: { type: 'string' },
      'ca-days': { type: 'string' },
      'client-ca': { type: 'boolean', default: false },
    },
  });
  switch (command) {
    case 'init': {
      if (!values.out) throw new UsageError('init needs --out DIR');
      const edgeNodes = list(values.nodes, []);
      process.stderr.write(`creating CAs and certificates for ${edgeNodes.length} edge node(s) in ${values.out}\n`);
      await writeBundle({
        out: values.out,
        edgeNodes,
        cloudNames: list(values['cloud-names'], ['cloud.edge-tunnel', '127.0.0.1']),
        xdsNames: list(values['xds-names'], ['127.0.0.1']),
        validDays: days(values.days),
        caDays: values['ca-days'] === undefined ? undefined : days(values['ca-days']),
      });
      process.stderr.write('done\n');
      return;
    }
    case 'node': {
      if (!values.dir || !values.node) throw new UsageError('node needs --dir DIR and --node NAME');
      await writeEdgeCertificate(values.dir, await loadBundleAuthority(values.dir, 'ca'), values.node, days(values.days));
      process.stderr.write(`wrote ${bundlePaths(values.dir).edgeDir(values.node)}\n`);
      return;
    }
    case 'client': {
      if (!values.dir || !values.name || !values['out-dir']) throw new UsageError('client needs --dir, --name and --out-dir');
      const pem = await issue(await loadBundleAuthority(values.dir, 'clientCa'), { commonName: values.name, usage: 'client' }, days(values.days));
      writeAtomically(`${values['out-dir']}/tls.key`, pem.key, 0o600);
      writeAtomically(`${values['out-dir']}/tls.crt`, pem.cert);
      process.stderr.write(`wrote ${values['out-dir']}/tls.crt and tls.key\n`);
      return;
    }
    case 'reissue': {
      if (!values.dir) throw new UsageError('reissue needs --dir DIR');
      const written = await reissueAll(values.dir, values['client-ca'] ? 'clientCa' : 'ca', days(values.days));
      process.stderr.write(`re-issued ${written.length} certificates: ${written.join(', ')}\n`);
      return;
    }
    case 'rollover': {
      const [step] = positionals;
      if (!values.dir || (step !== 'start' && step !== 'finish')) throw new UsageError('rollover needs start or finish, and --dir DIR');
      const which = values['client-ca'] ? 'clientCa' : 'ca';
      if (step === 'start') await startRollover(values.dir, which, values['ca-days'] === undefined ? undefined : days(values['ca-days']));
      else await finishRollover(values.dir, which);
      process.stderr.write(step === 'start' ? 'next CA made; everything trusts both; now: certs reissue --dir … and distribute\n' : 'the next CA is the CA; the old one is in ca-retired.crt\n');
      return;
    }
    case 'sidecar': {
      if (!values.dir || !values.name) throw new UsageError('sidecar needs --dir DIR and --name NAME');
      await writeSidecarCertificates(values.dir, values.name, days(values.days));
      process.stderr.write(`wrote ${bundlePaths(values.dir).sidecarXdsDir(values.name)} and ${bundlePaths(values.dir).sidecarConnectDir(values.name)}\n`);
      return;
    }
    default:
      throw new UsageError(command === undefined ? 'a command is required' : `unknown command "${command}"`);
  }
}

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(HELP);
} else {
  main(argv).catch((error: unknown) => {
    process.stderr.write(`certs: ${error instanceof Error ? error.message : String(error)}\n`);
    if (error instanceof UsageError || (error instanceof TypeError && 'code' in error)) process.stderr.write(HELP);
    process.exitCode = error instanceof UsageError || (error instanceof TypeError && 'code' in error) ? 2 : 1;
  });
}
