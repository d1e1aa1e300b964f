#!/usr/bin/env bash
# Debian packages the tests and demos use: iproute2 (network namespaces for pod networks), iptables (a
# sidecar pod's capture rules), openssl (the stand-in kubelets' certificates), python3-venv (the Envoy
# wheel). Installs only what is missing.

set -euo pipefail
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v iptables >/dev/null || missing+=(iptables)
command -v openssl >/dev/null || missing+=(openssl)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} from Debian's packages" >&2
  if [[ $(id -u) -ne 0 ]]; then echo "need root to install ${missing[*]}" >&2; exit 1; fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
