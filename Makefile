# mcp-authz: the two commands of the README are `make run` and `make test`.
export GOFLAGS := -buildvcs=false
GO ?= go
BIN := $(CURDIR)/bin

.PHONY: run test test-tools test-unit test-deploy lint build tools clean

## build: the mcp-authz binary and the development IdP, once per run
build:
	$(GO) build -o $(BIN)/mcp-authz ./cmd/mcp-authz
	$(GO) build -o $(BIN)/mcp-devidp ./cmd/mcp-devidp

## run: a local stack (development IdP + mcp-authz) with the shipped policies
run: build
	deploy/local/run.sh

## test: every test: the product's (race detector on, against the real tools) and the deploy checks
test: test-tools test-unit test-deploy

## test-tools: the real components the tests drive, built once into bin/ and reused
test-tools:
	test/tools/build.sh jaeger

test-unit:
	MCP_AUTHZ_JAEGER=$(BIN)/jaeger $(GO) test -race -count=1 ./...

test-deploy:
	cd deploy && $(GO) test -count=1 ./...

## lint: gofmt, go vet and staticcheck (built from the tools module)
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	cd deploy && $(GO) vet ./...
	test/tools/build.sh staticcheck
	$(BIN)/staticcheck ./...
	cd deploy && $(BIN)/staticcheck ./...

## tools: the heavy test tools (Hydra, Jaeger, ghz, benchstat, staticcheck), built once into bin/
tools:
	test/tools/build.sh

clean:
	rm -rf $(BIN)
