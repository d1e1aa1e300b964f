#!/usr/bin/env bash
# Builds Konnectivity (apiserver-network-proxy) server and agent, the peer the benchmarks compare
# edge-tunnel with, from the Go module proxy, and links them into <repo>/.tools/bin/ (git-ignored) as
#   konnectivity-server, konnectivity-agent   (sigs.k8s.io/apiserver-network-proxy v0.33.0)
# The recipe: the checksum database does not know the module (GONOSUMDB), and its go.mod replaces
# konnectivity-client with ./konnectivity-client, a nested module the module zip does not contain. So:
# copy the module, drop that replace, require the published konnectivity-client v0.33.0, build
# ./cmd/server and ./cmd/agent (about 2 min on 2 cores, cold).
# Binaries are cached outside the repo in
#   ${EDGE_TUNNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-tunnel}/konnectivity-v0.33.0/
# A cached build whose binaries run and carry the expected build info is not rebuilt.
#
# usage: install-konnectivity.sh [--force]
set -euo pipefail
LOG_PREFIX=konnectivity
STEP_HEARTBEAT_S=30
# shellcheck source=scripts/lib/build-steps.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/build-steps.sh"

VERSION=v0.33.0
MODULE=sigs.k8s.io/apiserver-network-proxy
CLIENT_MODULE=$MODULE/konnectivity-client

root=$(cd "$(dirname "$0")/../.." && pwd)
base=${EDGE_TUNNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-tunnel}
dir=$base/konnectivity-$VERSION
work=$base/work/konnectivity-$VERSION
bindir=$root/.tools/bin
export GOWORK=off # a go.work around the cache must not join the copied module
export GONOSUMDB=${GONOSUMDB:+$GONOSUMDB,}$MODULE


parse_force 2,13 "$@"

# --- cleanup of what this run started: the heartbeat and a half-built directory ----------------------
tmp_dir=
cleanup() {
  stop_heartbeat
  if [[ -n $tmp_dir ]]; then rm -rf "$tmp_dir"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM


command -v go >/dev/null || die "go is not on PATH (Go is needed to build Konnectivity $VERSION)"

# --- check: a directory holds a good build when this passes -------------------------------------------
# The copied module is the main module, so the binaries' build info says "(devel)" for it: the build
# writes BUILD-INFO naming the version, and the binaries must name the published client module.
check() { # <dir> [verbose]
  local b out
  if [[ $(head -1 "$1/BUILD-INFO" 2>/dev/null) != "$MODULE $VERSION" ]]; then
    [[ -z ${2:-} ]] || log "$1/BUILD-INFO does not start with '$MODULE $VERSION'"
    return 1
  fi
  for b in server agent; do
    out=$("$1/konnectivity-$b" --help 2>&1) || {
      [[ -z ${2:-} ]] || log "konnectivity-$b --help failed: $(head -3 <<<"$out")"
      return 1
    }
    out=$(go version -m "$1/konnectivity-$b" 2>&1) || out="(exit $?) $out"
    if ! grep -qE "^[[:space:]]+path[[:space:]]+$MODULE/cmd/$b\$" <<<"$out" ||
      ! grep -qE "^[[:space:]]+dep[[:space:]]+$CLIENT_MODULE[[:space:]]+$VERSION[[:space:]]" <<<"$out"; then
      [[ -z ${2:-} ]] || log "go version -m konnectivity-$b does not show path $MODULE/cmd/$b and dep $CLIENT_MODULE $VERSION"
      return 1
    fi
  done
}

download() { # go mod download reports a failure inside its JSON (an "Error" field): show it in the log
  go mod download -json "$MODULE@$VERSION" >download.json || { cat download.json; return 1; }
}
prepare() { # the copy: drop the replace of the nested client module, require its published release
  go mod edit -dropreplace="$CLIENT_MODULE" -require="$CLIENT_MODULE@$VERSION"
  # vendor/ matches the original go.mod, not this one; the build resolves modules itself (-mod=mod)
  rm -rf vendor
}
build() { # <out>
  CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" -o "$1/" ./cmd/server ./cmd/agent
  mv "$1/server" "$1/konnectivity-server"
  mv "$1/agent" "$1/konnectivity-agent"
}

install_konnectivity() {
  local t0 src srcdir
  t0=$(date +%s)
  log "Konnectivity $VERSION: building into $dir (logs in $work/)"
  rm -rf "$work"
  mkdir -p "$work"
  step "$work/download.log" "$work" "downloading $MODULE@$VERSION from the module proxy" download
  srcdir=$(sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p' "$work/download.json")
  [[ -f $srcdir/go.mod ]] || die "go mod download gave no module directory (see $work/download.json)"
  grep -qE "^replace[[:space:]]+$CLIENT_MODULE[[:space:]]+=>" "$srcdir/go.mod" ||
    log "  note: $MODULE@$VERSION's go.mod has no replace of $CLIENT_MODULE any more"
  src=$work/src
  cp -R "$srcdir" "$src"
  chmod -R u+w "$src" # the module cache is read-only
  step "$work/prepare.log" "$src" "preparing the copy (drop the replace, require $CLIENT_MODULE $VERSION)" prepare
  tmp_dir=$(mktemp -d "$base/.building-konnectivity-$VERSION.XXXXXX")
  step "$work/build.log" "$src" "downloading dependencies and compiling ./cmd/server and ./cmd/agent (about 2 min on 2 cores, cold)" build "$tmp_dir"
  {
    echo "$MODULE $VERSION"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) with $(go env GOVERSION) by bench/konnectivity/install-konnectivity.sh"
    echo "copy of the module with: replace $CLIENT_MODULE dropped, require $CLIENT_MODULE $VERSION"
  } >"$tmp_dir/BUILD-INFO"
  check "$tmp_dir" verbose || die "the built binaries do not pass the check (see above)"
  chmod 755 "$tmp_dir"
  rm -rf "$dir"
  mv "$tmp_dir" "$dir"
  tmp_dir=
  rm -rf "$src" # the copy is big and only needed for the build
  log "Konnectivity $VERSION: built and checked in $(since "$t0")"
}

mkdir -p "$base" "$bindir"
lock_cache "$base/.konnectivity.lock" install-konnectivity.sh
rm -rf "$base"/.building-konnectivity-* # left by an install that was killed (we hold the lock)

if ((force == 0)) && [[ -d $dir ]] && check "$dir"; then
  log "Konnectivity $VERSION: cached in $dir"
else
  if ((force)); then
    log "Konnectivity $VERSION: --force given; rebuilding"
  elif [[ -e $dir ]]; then
    log "Konnectivity $VERSION: $dir is incomplete or not $VERSION; rebuilding"
  fi
  install_konnectivity
fi
for b in konnectivity-server konnectivity-agent; do ln -sfn "$dir/$b" "$bindir/$b"; done
log "konnectivity-server, konnectivity-agent: $bindir/ -> $dir ($VERSION)"
