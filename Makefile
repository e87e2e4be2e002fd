# clipstore — the Makefile is the contract: every developer and CI run goes
# through these targets.

GO        ?= go
BIN       := $(CURDIR)/bin
PKGS      := ./...
# Pinned code generators; protoc itself comes from Debian's protobuf-compiler.
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
STATICCHECK_VERSION        := v0.8.2
FUZZTIME  ?= 60s

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build every package and the clipstore binary into bin/.
	$(GO) build $(PKGS)
	$(GO) build -o $(BIN)/clipstore ./cmd/clipstore

# The S3 tools the gateway's tests drive, from Debian (Python has no
# package index here): the tests use /usr/bin/aws, /usr/bin/python3,
# /usr/bin/rclone and /usr/bin/s3cmd; the Python loader's tests (python/)
# Debian's boto3 and torch.
S3_TOOLS_DEBS := awscli python3-boto3 python3-torch rclone s3cmd

.PHONY: test-deps
test-deps: ## Install what the tests drive (Debian's awscli, python3-boto3, python3-torch, rclone and s3cmd) when missing.
	@if [ -x /usr/bin/aws ] && [ -x /usr/bin/rclone ] && [ -x /usr/bin/s3cmd ] && \
		/usr/bin/python3 -c 'import boto3, torch' 2>/dev/null; then exit 0; fi; \
	echo "installing $(S3_TOOLS_DEBS) (the S3 gateway's and the Python loader's tests drive them)"; \
	SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(S3_TOOLS_DEBS) >/dev/null

.PHONY: test
test: test-deps ## Run all tests with the race detector (unit and end-to-end), then those it would skew.
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	$(GO) test -count=1 -run 'Allocs|Reuses' ./erasure/

.PHONY: bench
bench: ## Every benchmark beside its reference from the same run, as one markdown table (about 15 minutes: under 15 before the Find rows, which fill a million clips in 2.5 minutes).
	$(GO) run ./cmd/benchreport

.PHONY: bench-quick
bench-quick: ## The same table with few iterations and short runs, to check it all works (under 2 minutes).
	$(GO) run ./cmd/benchreport -quick

# Not part of bench: MinIO beside the gateway, installed into bin/ when
# missing (a few minutes the first time).
.PHONY: bench-s3
bench-s3: ## The S3 gateway, the native client and dev beside MinIO, one server and 6 distributed ones (same machine, same loads, alternating, 5 reps), as one markdown table (about 25 runs of 10 s a rep: roughly 25 minutes, not timed whole).
	$(GO) run ./cmd/benchreport -only s3peer

.PHONY: bench-s3-quick
bench-s3-quick: ## The same with two reps of 3 s runs, to check it all works (a few minutes once MinIO is installed).
	$(GO) run ./cmd/benchreport -only s3peer -quick

# Not part of bench either: the same cluster with TLS on every link.
.PHONY: bench-tls
bench-tls: ## 8 MiB puts and gets with TLS on every link beside plain text (two clusters, alternating, 3 reps) and AES-GCM's rate, as one markdown table (about 3 minutes).
	$(GO) run ./cmd/benchreport -only tls

.PHONY: bench-tls-quick
bench-tls-quick: ## The same with two reps of short runs, to check it all works (under a minute).
	$(GO) run ./cmd/benchreport -only tls -quick

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 60s).
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./erasure/
	$(GO) test -run='^$$' -fuzz='^FuzzParseHeader$$' -fuzztime=$(FUZZTIME) ./server/
	$(GO) test -run='^$$' -fuzz='^FuzzParseShardID$$' -fuzztime=$(FUZZTIME) ./server/
	$(GO) test -run='^$$' -fuzz='^FuzzApply$$' -fuzztime=$(FUZZTIME) ./meta/
	$(GO) test -run='^$$' -fuzz='^FuzzPlace$$' -fuzztime=$(FUZZTIME) ./meta/
	$(GO) test -run='^$$' -fuzz='^FuzzPieceMessages$$' -fuzztime=$(FUZZTIME) ./internal/wire/
	$(GO) test -run='^$$' -fuzz='^FuzzPieceRefs$$' -fuzztime=$(FUZZTIME) ./internal/wire/
	$(GO) test -run='^$$' -fuzz='^FuzzWriteRefs$$' -fuzztime=$(FUZZTIME) ./internal/wire/
	$(GO) test -run='^$$' -fuzz='^FuzzParseVerify$$' -fuzztime=$(FUZZTIME) ./internal/callauth/
	$(GO) test -run='^$$' -fuzz='^FuzzVerify$$' -fuzztime=$(FUZZTIME) ./internal/capability/
	$(GO) test -run='^$$' -fuzz='^FuzzFrames$$' -fuzztime=$(FUZZTIME) ./internal/rawshard/

.PHONY: soak
soak: ## Repeat the test suite to shake out flakes (COUNT, default 20).
	$(GO) test -race -count=$(or $(COUNT),20) -timeout 60m $(PKGS)

.PHONY: soak-faults
soak-faults: ## Repeat the fault-injection tests (frozen and killed processes, lost files, node lifecycle) COUNT times (default 5).
	$(GO) test -race -count=$(or $(COUNT),5) -timeout 60m ./test/liveness/ ./test/durability/ ./test/lifecycle/

.PHONY: lint
lint: ## gofmt, go vet and staticcheck.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

.PHONY: proto
proto: ## Regenerate proto/*pb from proto/*.proto (needs protoc: apt-get install protobuf-compiler).
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(BIN):$$PATH protoc -I proto \
		--go_out=. --go_opt=module=github.com/clipstore/clipstore \
		--go-grpc_out=. --go-grpc_opt=module=github.com/clipstore/clipstore \
		proto/*.proto

.PHONY: run
run: build ## Start the dev cluster: 1 meta + 6 storage nodes in one process, meta on 127.0.0.1:7400.
	$(BIN)/clipstore dev --data $(CURDIR)/clipstore-data

.PHONY: clean
clean: ## Remove build output.
	rm -rf $(BIN)
