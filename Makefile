# mcp-authz: the two commands of the README are `make run` and `make test`.
export GOFLAGS := -buildvcs=false
GO ?= go
BIN := $(CURDIR)/bin

.PHONY: run test test-tools test-unit test-deploy test-e2e lint build tools clean bench bench-go soak

## build: the mcp-authz binary, the development IdP, the example MCP server and the Envoy stand-in of make run
build:
	$(GO) build -o $(BIN)/mcp-authz ./cmd/mcp-authz
	$(GO) build -o $(BIN)/mcp-devidp ./cmd/mcp-devidp
	$(GO) build -o $(BIN)/mcp-example-server ./cmd/mcp-example-server
	$(GO) build -o $(BIN)/envoy-standin ./test/envoystandin/cmd/envoy-standin

## run: a local stack (development IdP + mcp-authz) with the shipped policies
run: build
	deploy/local/run.sh

## test: every test, race detector on: the product's packages, the end-to-end suite (test/e2e: it skips what
## needs a missing program unless MCP_AUTHZ_E2E_REQUIRED is set) and the deploy checks (their own module)
test: test-tools test-unit test-deploy

## test-tools: the real components the tests drive, built once into bin/ and reused (npm packages again when
## package-lock.json changed)
test-tools:
	test/tools/build.sh jaeger hydra exchangeas
	@if command -v npm >/dev/null && { [ ! -d test/e2e/node/node_modules ] || [ test/e2e/node/package-lock.json -nt test/e2e/node/node_modules/.package-lock.json ]; }; then cd test/e2e/node && npm ci --no-audit --no-fund; fi

test-unit:
	MCP_AUTHZ_JAEGER=$(BIN)/jaeger $(GO) test -race -count=1 ./...

test-deploy:
	cd deploy && $(GO) test -count=1 ./...

## test-e2e: the end-to-end suite alone, verbose
test-e2e:
	$(GO) test -race -count=1 -v ./test/e2e

## bench: the load benchmark (test/bench): mcp-authz against a do-nothing ext_authz server (the floor) and an
## OPA-Envoy style baseline, same corpus, same load generator, for each corpus (small, zipf: 50 000 users of
## unequal activity, fresh: a new token every Check, badsig: forged tokens); prints a table with the ratios
## per corpus, then one line each with its targets. Exit 1 when an answer is not the expected decision.
## BENCH_FLAGS="-corpus fresh -duration=10s -rounds=5 -cpuprofile=cpu.prof" ...
BENCH_FLAGS ?= -corpus all -duration=4s -rounds=3
bench:
	$(GO) run ./test/bench $(BENCH_FLAGS)

## soak: the endurance run (docs/reliability.md), not part of `make test`: SOAK (default 10m) of a mixed corpus
## (thousands of tokens, every deny kind) against mcp-authz at half saturation, a signing key rotation at the
## IdP partway and a policy reload every 30s; exit 1 on a wrong decision, an RPC error, a failed reload or
## memory or goroutines that grow. SOAK=1m make soak for a short one; SOAK_FLAGS=-endurance-users=2000 ...
SOAK ?= 10m
SOAK_FLAGS ?=
soak:
	$(GO) run ./test/bench -endurance=$(SOAK) $(SOAK_FLAGS)

## bench-go: the Go benchmarks of the decision path pieces, benchstat-ready (BENCH_COUNT runs of each)
BENCH_COUNT ?= 6
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count=$(BENCH_COUNT) ./authz ./policy ./envoy

## lint: gofmt, go vet and staticcheck (built from the tools module)
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	cd deploy && $(GO) vet ./...
	test/tools/build.sh staticcheck
	$(BIN)/staticcheck ./...
	cd deploy && $(BIN)/staticcheck ./...

## tools: the heavy test tools (Hydra, Jaeger, ghz, benchstat, staticcheck, exchangeas), built once into bin/
tools:
	test/tools/build.sh

clean:
	rm -rf $(BIN)
