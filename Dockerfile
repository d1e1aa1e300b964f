# edge-tunnel: one image for the xDS server (`xds serve`), the bootstrap init step (`agent-bootstrap`),
# the edge's connect-terminator and the certificate tool (`certs`). Envoy itself runs from the official envoyproxy/envoy image.
#
#   docker build -t edge-tunnel:0.1.0 .
#   docker run --rm edge-tunnel:0.1.0 dist/xds/cli/main.js --help
#
# One image for amd64 and arm64 alike (edge fleets are often arm64): nothing in it is architecture-
# specific (the runtime dependencies are plain JavaScript), so the build stages run once on the build
# machine's platform and only the runtime stage is per target:
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t registry.example.com/edge-tunnel:0.1.0 --push .
#
# The manifests in k8s/ run it as `node dist/xds/cli/main.js serve ...` and
# `node dist/agent-bootstrap/cli.js edge|cloud ...` from /app.

# --- build: compile TypeScript with the dev dependencies -------------------------------------------
# Node 24, the active LTS (Node 20, on the development machines, reached its end of life in April 2026).
FROM --platform=$BUILDPLATFORM node:24-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
# Only what runs in a cluster (integration/ and bench/, also in tsconfig.json, are left out: nothing
# here imports them). Compiled tests and source maps are dropped after the type check.
COPY xds ./xds
COPY agent-bootstrap ./agent-bootstrap
COPY envoy ./envoy
COPY certs ./certs
COPY connect-terminator ./connect-terminator
RUN npx tsc -p tsconfig.json \
 && find dist \( -name '*.test.js' -o -name '*.js.map' \) -delete

# --- production dependencies only -------------------------------------------------------------------
FROM --platform=$BUILDPLATFORM node:24-bookworm AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# --- runtime ----------------------------------------------------------------------------------------
FROM node:24-bookworm-slim
ENV NODE_ENV=production
# iptables for the sidecar's capture init container (agent-bootstrap capture; k8s/components/edge-tunnel-sidecar).
RUN apt-get update && apt-get install -y --no-install-recommends iptables && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# package.json carries "type": "module": the compiled files are ES modules.
COPY --from=deps /src/package.json ./package.json
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# The image's `node` user (uid 1000), numeric so that runAsNonRoot can check it.
USER 1000:1000
ENTRYPOINT ["node"]
CMD ["dist/xds/cli/main.js", "--help"]
