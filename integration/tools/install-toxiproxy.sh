#!/usr/bin/env bash
# Builds Toxiproxy (the fault injector of the weak-link tests) from the Go module proxy and links it
# into <repo>/.tools/bin/ (git-ignored):
#   toxiproxy-server, toxiproxy-cli  v2.5.0  (go install github.com/Shopify/toxiproxy/v2/cmd/{server,cli})
# The binaries are cached outside the repo in
#   ${EDGE_TUNNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-tunnel}/toxiproxy-v2.5.0/
# and are not rebuilt while both run and report 2.5.0 (about 15 s cold with a warm Go module cache, well under a second cached).
#
# usage: install-toxiproxy.sh [--force]
set -euo pipefail
LOG_PREFIX=toxiproxy
# shellcheck source=scripts/lib/build-steps.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/build-steps.sh"

VERSION=v2.5.0
MODULE=github.com/Shopify/toxiproxy/v2

root=$(cd "$(dirname "$0")/../.." && pwd)
cache_root=${EDGE_TUNNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-tunnel}
dir=$cache_root/toxiproxy-$VERSION
bindir=$root/.tools/bin
export GOWORK=off # a go.work around the cache must not join the build


parse_force 2,9 "$@"

tmp=
cleanup() { if [[ -n $tmp ]]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# check <dir> [verbose]: both binaries run and report the pinned version (set by -ldflags -X, as
# upstream's release build does; a plain `go install` would report "git").
check() {
  local out want=${VERSION#v}
  out=$("$1/toxiproxy-server" -version 2>&1) || out="(exit $?) $out"
  if [[ $out != "toxiproxy-server version $want" ]]; then
    [[ -z ${2:-} ]] || log "toxiproxy-server -version printed: ${out:-nothing} (want toxiproxy-server version $want)"
    return 1
  fi
  out=$("$1/toxiproxy-cli" --version 2>&1) || out="(exit $?) $out"
  if [[ $out != "toxiproxy-cli version $want" ]]; then
    [[ -z ${2:-} ]] || log "toxiproxy-cli --version printed: ${out:-nothing} (want toxiproxy-cli version $want)"
    return 1
  fi
}

mkdir -p "$cache_root" "$bindir"
lock_cache "$cache_root/.toxiproxy.lock" install-toxiproxy.sh
rm -rf "$cache_root"/.building-toxiproxy-* # left by an install that was killed (we hold the lock)

if ((force == 0)) && [[ -d $dir ]] && check "$dir"; then
  log "$VERSION: cached in $dir"
else
  command -v go >/dev/null || die "go is not on PATH (Go is needed to build Toxiproxy $VERSION)"
  if ((force)); then
    log "$VERSION: --force: rebuilding"
  elif [[ -e $dir ]]; then
    log "$VERSION: $dir is incomplete or does not report $VERSION; rebuilding"
  fi
  t0=$(date +%s)
  tmp=$(mktemp -d "$cache_root/.building-toxiproxy-$VERSION.XXXXXX")
  buildlog=$cache_root/toxiproxy-$VERSION.build.log
  : >"$buildlog"
  log "$VERSION: building into $dir with $(go env GOVERSION) (log: $buildlog)"
  for cmd in server cli; do
    log "  go install $MODULE/cmd/$cmd@$VERSION ..."
    if ! (cd "$tmp" && env GOBIN="$tmp/gobin" CGO_ENABLED=0 go install -trimpath \
      -ldflags "-s -w -X $MODULE.Version=${VERSION#v}" "$MODULE/cmd/$cmd@$VERSION") >>"$buildlog" 2>&1; then
      log "FAILED: go install $MODULE/cmd/$cmd@$VERSION; last lines of its output:"
      tail -n 30 "$buildlog" | sed 's/^/    /' >&2
      exit 1
    fi
    [[ -x $tmp/gobin/$cmd ]] || die "go install $MODULE/cmd/$cmd@$VERSION produced no '$cmd' binary"
    mkdir -p "$tmp/out"
    mv "$tmp/gobin/$cmd" "$tmp/out/toxiproxy-$cmd"
  done
  check "$tmp/out" verbose || die "the built binaries do not report $VERSION"
  chmod 755 "$tmp/out"
  rm -rf "$dir"
  mv "$tmp/out" "$dir"
  log "$VERSION: built and checked in $(($(date +%s) - t0)) s"
fi

for b in toxiproxy-server toxiproxy-cli; do ln -sfn "$dir/$b" "$bindir/$b"; done
log "toxiproxy-server: $bindir/toxiproxy-server ($("$bindir/toxiproxy-server" -version))"
log "toxiproxy-cli: $bindir/toxiproxy-cli ($("$bindir/toxiproxy-cli" --version))"
