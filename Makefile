# knowingnode. `make run` starts the local topology; `make test` runs every test.
GO      ?= go
BUF     := $(GO) tool -modfile=tools/buf.mod buf
TOOL    := $(GO) tool -modfile=tools/tools.mod
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X github.com/knowingnode/knowingnode/internal/buildinfo.version=$(VERSION) \
           -X github.com/knowingnode/knowingnode/internal/buildinfo.revision=$(REVISION)
export CGO_ENABLED ?= 0

.PHONY: all deps generate check-generate lint build test unit e2e run bench tools

all: build

## generate: regenerate gen/ from proto/ (Go, gRPC, gateway, OpenAPI, and
## the descriptor set with comments that reflection serves)
generate:
	rm -rf gen/knowingnode gen/openapi/knowingnode.swagger.json
	$(BUF) generate
	$(BUF) build --as-file-descriptor-set -o gen/descriptor/knowingnode.binpb

## check-generate: fail when gen/ differs from what proto/ generates
check-generate:
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(BUF) generate -o $$tmp && \
	diff -r $$tmp/gen/knowingnode gen/knowingnode && \
	diff $$tmp/gen/openapi/knowingnode.swagger.json gen/openapi/knowingnode.swagger.json && \
	$(BUF) build --as-file-descriptor-set -o $$tmp/knowingnode.binpb && \
	cmp $$tmp/knowingnode.binpb gen/descriptor/knowingnode.binpb && \
	echo "gen/ is up to date"

## lint: gofmt, go vet, buf lint, buf breaking against main
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BUF) lint
	@if git rev-parse --verify -q main >/dev/null && git cat-file -e main:buf.yaml 2>/dev/null; then \
	  $(BUF) breaking --against '.git#branch=main'; \
	else echo "buf breaking: no main branch with buf.yaml to compare against; skipped"; fi

## build: static binaries in bin/
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./backend ./frontend ./loadtest/cmd/load ./check

## test: every test: generated code, lint, unit and integration, browser,
## fuzzing, the Helm chart, e2e. Installs the pinned Debian packages the tests
## need first (make deps).
test: deps check-generate lint unit fuzz helm e2e

## helm: the chart in deploy/helm: helm lint --strict, schema, Pod Security,
## and rendered equal to every kustomize overlay (its own module)
.PHONY: helm
helm:
	cd deploy/helm && $(GO) test -count=1 ./...

## chart: the Helm chart packaged in bin/, its version following the project
## version: a vX.Y.Z tag (git describe) gives X.Y.Z (X.Y.Z-N-g<commit> past
## it), no tag 0.0.0-g<commit>; appVersion, the image tag, is VERSION itself
CHART_VERSION ?= $(shell v='$(VERSION)'; case "$$v" in (v[0-9]*.[0-9]*.[0-9]*) echo "$$v" | cut -c2-;; (*) echo "0.0.0-g$$v";; esac)
.PHONY: chart
chart:
	$(GO) tool -modfile=tools/helm.mod helm package deploy/helm/knowingnode --version '$(CHART_VERSION)' --app-version '$(VERSION)' -d bin/

## deps: the pinned Debian packages in tools/debian-packages.txt, installed with
## apt when missing (Chromium for the browser tests; containerd, runc, CNI
## plugins, iptables, nftables, conntrack for the real-node e2e; wrk for make load)
deps:
	tools/install-debian-packages.sh

# The browser test (frontend/web) must run, never skip: make deps installs
# Chromium, and KNOWINGNODE_REQUIRE_BROWSER turns its absence into a failure.
# -race needs cgo, which the static release builds above turn off.
unit: deps
	CGO_ENABLED=1 KNOWINGNODE_REQUIRE_BROWSER=1 $(GO) test -count=1 -race -timeout 15m ./...

## e2e: the deploy/ manifests against a real control plane with kwok nodes,
## then on a real two-node cluster (kubelet, containerd, kube-proxy; root)
e2e: deps e2e-control-plane e2e-node

## e2e-control-plane: the manifests against a real control plane (no root)
.PHONY: e2e-control-plane
e2e-control-plane:
	deploy/e2e/run.sh

## e2e-node: the deploy/ overlays on a REAL two-node cluster on this machine
## (kubelet, containerd, kube-proxy, CoreDNS; root needed): deploy/e2e/node
.PHONY: e2e-node
e2e-node:
	cd deploy/e2e/node && KNOWINGNODE_NODE_E2E=1 $(GO) test -count=1 -timeout 45m ; rc=$$?; \
	  flock -n /tmp/kne2e.lock sh -c 'STATE=/tmp/kne2e ./cluster/down.sh; rm -rf /tmp/kne2e-work' || true; exit $$rc

## run: the local topology (backends, cluster-like DNS, frontend), no cluster needed
run: build
	$(GO) build -o bin/local ./deploy/local
	bin/local -bin bin

## load: CPU per request of each server under ghz, beside a bare grpc-go reference
load:
	docs/load/run.sh

## fuzz: each fuzz target for FUZZTIME (3000 inputs) on one worker, after its
## committed seed corpus (testdata/fuzz) passed; targets listed explicitly
# A count, not a time: a time limit can end a run mid-input and fail it with
# "context deadline exceeded" (seen here), which a test must never do.
FUZZTIME ?= 3000x
FUZZ_TARGETS := ./internal/discovery:FuzzParseTarget ./internal/discovery:FuzzResolveClusterDNS \
                ./frontend/gateway:FuzzGatewayRequest ./internal/identity:FuzzLoad \
                ./internal/identity:FuzzParseKeyValues
.PHONY: fuzz
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t#*:} ($${t%%:*}) for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -parallel 1 "$${t%%:*}"; \
	done

## bench: benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

tools:
	$(TOOL) -n grpcurl >/dev/null
