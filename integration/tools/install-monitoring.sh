#!/usr/bin/env bash
# Builds the cloud monitoring clients the end-to-end tests read edge nodes with, from the Go module
# proxy, and links them into <repo>/.tools/bin/ (git-ignored):
#   metrics-server  v0.8.0    (sigs.k8s.io/metrics-server/cmd/metrics-server, as a tool of a module:
#                              its go.mod has replace directives, which `go install pkg@version` refuses)
#   prometheus      v0.316.0  (go install github.com/prometheus/prometheus/cmd/prometheus; Prometheus 3)
# The binaries are cached outside the repo in
#   ${EDGE_TUNNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-tunnel}/monitoring-<versions>/
# and are not rebuilt while both run and report their versions (about 8 min cold on 2 cores, well
# under a second cached).
#
# usage: install-monitoring.sh [--force]
set -euo pipefail
LOG_PREFIX=monitoring
# shellcheck source=scripts/lib/build-steps.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/build-steps.sh"

METRICS_SERVER_VERSION=v0.8.0
PROMETHEUS_VERSION=v0.316.0

root=$(cd "$(dirname "$0")/../.." && pwd)
cache_root=${EDGE_TUNNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-tunnel}
dir=$cache_root/monitoring-metrics-server-$METRICS_SERVER_VERSION-prometheus-$PROMETHEUS_VERSION
bindir=$root/.tools/bin
export GOWORK=off # a go.work around the cache must not join the build

parse_force 2,12 "$@"

tmp=
cleanup() { stop_heartbeat; if [[ -n $tmp ]]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# check <dir> [verbose]: both binaries run and report the pinned versions (set with -ldflags -X, as the
# upstream release builds do; a plain build reports none).
check() {
  local out
  out=$("$1/metrics-server" --version 2>&1) || out="(exit $?) $out"
  if [[ $out != *"$METRICS_SERVER_VERSION"* ]]; then
    [[ -z ${2:-} ]] || log "metrics-server --version printed: ${out:-nothing} (want $METRICS_SERVER_VERSION)"
    return 1
  fi
  out=$("$1/prometheus" --version 2>&1) || out="(exit $?) $out"
  if [[ $out != *"version ${PROMETHEUS_VERSION#v}"* ]]; then
    [[ -z ${2:-} ]] || log "prometheus --version printed: ${out:-nothing} (want version ${PROMETHEUS_VERSION#v})"
    return 1
  fi
}

build_metrics_server() {
  cat >go.mod <<MOD
module edge-tunnel.local/metrics-server-build

go 1.26
MOD
  go get -tool "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
  CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION -X k8s.io/component-base/version.gitVersion=$METRICS_SERVER_VERSION" \
    -o out/metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server
}

build_prometheus() {
  env GOBIN="$PWD/gobin" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
  mv gobin/prometheus out/prometheus
}

mkdir -p "$cache_root" "$bindir"
lock_cache "$cache_root/.monitoring.lock" install-monitoring.sh
rm -rf "$cache_root"/.building-monitoring-* # left by an install that was killed (we hold the lock)

if ((force == 0)) && [[ -d $dir ]] && check "$dir"; then
  log "metrics-server $METRICS_SERVER_VERSION, prometheus $PROMETHEUS_VERSION: cached in $dir"
else
  command -v go >/dev/null || die "go is not on PATH (Go is needed to build metrics-server and Prometheus)"
  if ((force)); then
    log "--force: rebuilding"
  elif [[ -e $dir ]]; then
    log "$dir is incomplete or does not report the pinned versions; rebuilding"
  fi
  t0=$(date +%s)
  tmp=$(mktemp -d "$cache_root/.building-monitoring.XXXXXX")
  mkdir -p "$tmp/out"
  log "building into $dir with $(go env GOVERSION)"
  step "$cache_root/monitoring-metrics-server.build.log" "$tmp" "building metrics-server $METRICS_SERVER_VERSION (about 3 min cold)" build_metrics_server
  step "$cache_root/monitoring-prometheus.build.log" "$tmp" "building prometheus $PROMETHEUS_VERSION (about 5 min cold)" build_prometheus
  check "$tmp/out" verbose || die "the built binaries do not report the pinned versions"
  chmod 755 "$tmp/out"
  rm -rf "$dir"
  mv "$tmp/out" "$dir"
  log "built and checked in $(since "$t0")"
fi

for b in metrics-server prometheus; do ln -sfn "$dir/$b" "$bindir/$b"; done
log "metrics-server: $bindir/metrics-server ($("$bindir/metrics-server" --version 2>&1 | head -1))"
log "prometheus: $bindir/prometheus ($("$bindir/prometheus" --version 2>&1 | head -1))"
