#!/usr/bin/env bash
# Regenerates envoy/generated from the pinned Envoy API (go-control-plane envoy v1.40.0, see
# envoy/api-image/go.mod): descriptor image by Go, then buf + ts-proto for the files in envoy/api-files.txt.
set -euo pipefail
envoy_dir=$(cd "$(dirname "$0")/.." && pwd)
cache=${EDGE_TUNNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-tunnel}
image=$cache/envoy-api-$(sha256sum "$envoy_dir/api-image/go.sum" "$envoy_dir/api-image/main.go" | sha256sum | cut -c1-12).binpb
mkdir -p "$cache"
if [[ ! -s $image ]]; then
  echo "building the Envoy API descriptor image (Go, about a minute)" >&2
  (cd "$envoy_dir/api-image" && go run . "$image.tmp") && mv "$image.tmp" "$image"
fi
paths=()
while read -r f; do [[ -n $f ]] && paths+=(--path "$f"); done <"$envoy_dir/api-files.txt"
rm -rf "$envoy_dir/generated"
echo "generating TypeScript into envoy/generated" >&2
(cd "$envoy_dir" && npx --no-install buf generate "$image" --template buf.gen.yaml --include-imports "${paths[@]}")
echo "generated $(find "$envoy_dir/generated" -name '*.ts' | wc -l) files" >&2
