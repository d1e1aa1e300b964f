#!/usr/bin/env bash
# Builds the real Kubernetes components the integration tests run, from the Go module proxy, and
# links them into <repo>/.tools/bin/ (git-ignored):
#   kube-apiserver, kubectl  v1.37.2  (k8s.io/kubernetes, staging modules replaced by their published v0.37.2)
#   etcd                     3.6.16   (go.etcd.io/etcd/server/v3/etcdmain.Main)
#   kwok                     v0.7.0   (go install sigs.k8s.io/kwok/cmd/kwok)
# Binaries are cached outside the repo in
#   ${EDGE_TUNNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-tunnel}/k8s-tools/<component>-<version>/
# A cached component whose binaries run and report the right version is not rebuilt.
#
# usage: install-k8s-tools.sh [--force] [kubernetes|etcd|kwok ...]   (default: all three)
# Needs Go >= 1.26.0 (k8s.io/kubernetes v1.37.2 and etcd 3.6.16 declare `go 1.26.0`).
set -euo pipefail
LOG_PREFIX=k8s-tools
# shellcheck source=scripts/lib/build-steps.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/build-steps.sh"

KUBE_VERSION=v1.37.2    # k8s.io/kubernetes
STAGING_VERSION=v0.37.2 # its k8s.io/* staging modules, as published
ETCD_VERSION=3.6.16
KWOK_VERSION=v0.7.0
MIN_GO=1.26.0

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${EDGE_TUNNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-tunnel}/k8s-tools
bindir=$root/.tools/bin
export GOWORK=off # a go.work around the cache must not join the throwaway modules


force=0
components=()
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    kubernetes | etcd | kwok) components+=("$arg") ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg' (want --force, kubernetes, etcd, kwok)" ;;
  esac
done
((${#components[@]})) || components=(kubernetes etcd kwok)

# --- cleanup of what this run started: the heartbeat and half-built directories -------------------
tmp_dirs=()
cleanup() {
  stop_heartbeat
  local d
  for d in "${tmp_dirs[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM


# --- Go ----------------------------------------------------------------------------------------------
command -v go >/dev/null || die "go is not on PATH (Go >= $MIN_GO is needed to build the Kubernetes tools)"
go_version=$(go env GOVERSION) || die "'go env GOVERSION' failed"
if [[ $(printf '%s\n%s\n' "$MIN_GO" "${go_version#go}" | sort -V | head -1) != "$MIN_GO" ]] &&
  [[ $(go env GOTOOLCHAIN) == local* ]]; then
  die "$go_version is older than go$MIN_GO and GOTOOLCHAIN=local forbids fetching a newer toolchain"
fi

# --- checks: a directory holds a good component when these pass ---------------------------------------
check_kubernetes() { # <dir> [verbose]
  local out
  out=$("$1/kube-apiserver" --version 2>&1) || out="(exit $?) $out"
  if [[ $out != "Kubernetes $KUBE_VERSION" ]]; then
    [[ -z ${2:-} ]] || log "kube-apiserver --version printed: ${out:-nothing} (want Kubernetes $KUBE_VERSION)"
    return 1
  fi
  out=$("$1/kubectl" version --client -o yaml 2>&1) || out="(exit $?) $out"
  if ! grep -q "^  gitVersion: $KUBE_VERSION\$" <<<"$out"; then
    [[ -z ${2:-} ]] || log "kubectl version --client -o yaml printed: ${out:-nothing} (want gitVersion: $KUBE_VERSION)"
    return 1
  fi
}
check_etcd() {
  local out
  out=$("$1/etcd" --version 2>&1) || out="(exit $?) $out"
  if ! grep -q "^etcd Version: $ETCD_VERSION\$" <<<"$out"; then
    [[ -z ${2:-} ]] || log "etcd --version printed: ${out:-nothing} (want etcd Version: $ETCD_VERSION)"
    return 1
  fi
}
check_kwok() {
  local out
  out=$("$1/kwok" --version 2>&1) || out="(exit $?) $out"
  if ! grep -q "^kwok version $KWOK_VERSION " <<<"$out"; then
    [[ -z ${2:-} ]] || log "kwok --version printed: ${out:-nothing} (want kwok version $KWOK_VERSION)"
    return 1
  fi
}

# --- builds: each writes its binaries into the (empty) directory $1 ------------------------------------
download_kubernetes() { go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >download.json; }
build_kubernetes() {
  local out=$1 work=$cache/work/kubernetes-$KUBE_VERSION json gomod info staging=() m
  mkdir -p "$work"
  rm -f "$work/go.mod" "$work/go.sum"
  # k8s.io/kubernetes's own go.mod names its staging modules (`k8s.io/x => ./staging/src/k8s.io/x`),
  # which the module zip does not contain: replace each with its published release instead.
  step "$work/download.log" "$work" "downloading k8s.io/kubernetes@$KUBE_VERSION" download_kubernetes
  json=$(<"$work/download.json")
  gomod=$(sed -nE 's/^[[:space:]]*"GoMod": "(.*)",?$/\1/p' <<<"$json")
  info=$(sed -nE 's/^[[:space:]]*"Info": "(.*)",?$/\1/p' <<<"$json")
  [[ -f $gomod ]] || die "go mod download did not give k8s.io/kubernetes's go.mod (see $work/download.json)"
  while read -r m; do staging+=("$m"); done < <(
    sed -nE 's#^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[^[:space:]]+)([[:space:]]+v[^[:space:]]+)?[[:space:]]+=>[[:space:]]+\./staging/.*#\2#p' "$gomod")
  ((${#staging[@]})) || die "found no './staging/' replacements in $gomod"
  log "  k8s.io/kubernetes $KUBE_VERSION has ${#staging[@]} staging modules; replacing each with $STAGING_VERSION"
  {
    echo "// Generated by k8s/tools/install-k8s-tools.sh: builds kube-apiserver and kubectl $KUBE_VERSION."
    echo "module edge-tunnel.local/k8s-tools/kubernetes"
    echo
    grep -m1 -E '^go [0-9]' "$gomod"
    # the upstream module's godebug settings (single lines or a block), so behaviour matches its build
    awk '/^godebug[[:space:]]*\(/ {b=1} b || /^godebug[[:space:]]/ {print} b && /^\)/ {b=0}' "$gomod"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "tool ("
    echo "	k8s.io/kubernetes/cmd/kube-apiserver"
    echo "	k8s.io/kubernetes/cmd/kubectl"
    echo ")"
    echo
    echo "replace ("
    for m in "${staging[@]}"; do echo "	$m => $m $STAGING_VERSION"; done
    echo ")"
  } >"$work/go.mod"
  step "$work/tidy.log" "$work" "resolving and downloading modules (go mod tidy)" go mod tidy

  # The version the binaries report (kubectl version, kube-apiserver --version, /version), set the way
  # hack/lib/version.sh does; the build date is the release's (the module's publication time). The
  # module proxy does not tell the release's git commit: gitCommit is left empty.
  local major=${KUBE_VERSION#v} minor date ldflags=() key val
  minor=${major#*.} minor=${minor%%.*} major=${major%%.*}
  date=$(sed -nE 's/.*"Time":"([^"]+)".*/\1/p' "$info" 2>/dev/null || true)
  date=${date:-1970-01-01T00:00:00Z}
  date=${date%%.*} date=${date%Z}Z
  for kv in "gitVersion=$KUBE_VERSION" "gitMajor=$major" "gitMinor=$minor" "gitCommit=" "buildDate=$date"; do
    key=${kv%%=*} val=${kv#*=}
    ldflags+=("-X 'k8s.io/component-base/version.$key=$val'" "-X 'k8s.io/client-go/pkg/version.$key=$val'")
  done
  # As upstream's release build (hack/lib/golang.sh): static, trimmed, stripped, same build tags.
  step "$work/build.log" "$work" "compiling kube-apiserver and kubectl (about 7 min on 2 cores, cold)" \
    env CGO_ENABLED=0 go build -trimpath -tags=selinux,notest,grpcnotrace -ldflags "${ldflags[*]} -s -w" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
}

etcd_module() {
  go mod init edge-tunnel.local/k8s-tools/etcd && go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" && go mod tidy
}
build_etcd() {
  local out=$1 work=$cache/work/etcd-v$ETCD_VERSION
  mkdir -p "$work"
  rm -f "$work/go.mod" "$work/go.sum"
  cat >"$work/main.go" <<'EOF'
// Generated by k8s/tools/install-k8s-tools.sh: the etcd server binary, as etcd's own server/main.go.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
EOF
  step "$work/mod.log" "$work" "resolving and downloading go.etcd.io/etcd/server/v3@v$ETCD_VERSION" etcd_module
  step "$work/build.log" "$work" "compiling etcd (about 2 min on 2 cores, cold)" \
    env CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd" .
}

build_kwok() {
  local out=$1 work=$cache/work/kwok-$KWOK_VERSION
  mkdir -p "$work"
  step "$work/install.log" "$work" "go install sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION (about 3 min on 2 cores, cold)" \
    env GOBIN="$out" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

# --- install_component <component> <version> <binaries...> -------------------------------------------------------
install_component() {
  local name=$1 version=$2 t0 tmp b
  shift 2
  local dir=$cache/$name-$version
  if ((force == 0)) && [[ -d $dir ]] && "check_$name" "$dir"; then
    log "$name $version: cached in $dir"
  else
    [[ ! -e $dir ]] || log "$name $version: $dir is incomplete or does not report $version; rebuilding"
    t0=$(date +%s)
    log "$name $version: building into $dir (logs in $cache/work/)"
    tmp=$(mktemp -d "$cache/.building-$name-$version.XXXXXX")
    tmp_dirs+=("$tmp")
    "build_$name" "$tmp"
    for b in "$@"; do [[ -x $tmp/$b ]] || die "$name $version: the build produced no $b"; done
    "check_$name" "$tmp" verbose || die "$name $version: the built binaries do not report $version"
    chmod 755 "$tmp"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    log "$name $version: built and checked in $(since "$t0")"
  fi
  for b in "$@"; do ln -sfn "$dir/$b" "$bindir/$b"; done
}

mkdir -p "$cache" "$bindir"
lock_cache "$cache/.lock" install-k8s-tools.sh
rm -rf "$cache"/.building-* # left by an install that was killed (we hold the lock: none is running)

t_all=$(date +%s)
for c in "${components[@]}"; do
  case $c in
    kubernetes) install_component kubernetes "$KUBE_VERSION" kube-apiserver kubectl ;;
    etcd) install_component etcd "v$ETCD_VERSION" etcd ;;
    kwok) install_component kwok "$KWOK_VERSION" kwok ;;
  esac
done

for c in "${components[@]}"; do
  case $c in
    kubernetes)
      log "kube-apiserver: $bindir/kube-apiserver ($("$bindir/kube-apiserver" --version))"
      log "kubectl: $bindir/kubectl ($("$bindir/kubectl" version --client | head -1))"
      ;;
    etcd) log "etcd: $bindir/etcd ($("$bindir/etcd" --version | head -1))" ;;
    kwok) log "kwok: $bindir/kwok ($("$bindir/kwok" --version | head -1))" ;;
  esac
done
log "done in $(since "$t_all")"
