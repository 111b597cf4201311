# rtstack — the two commands: `make run` and `make test`.
GO        ?= go
BIN       := bin/rtstack
PKGS      := ./...
# Integration tests share one Postgres/Redis/RabbitMQ; two packages at a time
# keeps the 2-core machine responsive without serialising everything.
TESTFLAGS ?= -race -count=1 -p 2 -timeout 30m
GOLANGCI_VERSION := v2.15.0
GOLANGCI  := $(shell command -v golangci-lint 2>/dev/null || ls $$($(GO) env GOPATH)/bin/golangci-lint 2>/dev/null)

.PHONY: run demo-cluster build test test-short test-e2e bench lint lint-install fmt vet fuzz clean

run: build
	./$(BIN) dev

# The shape of a deployment on this machine: the embedded broker, two
# gateways, two projector processes, the reactor and two workers, each its
# own process (infra/demo-cluster.sh).
demo-cluster: build
	./infra/demo-cluster.sh

build:
	@mkdir -p bin
	$(GO) build -o $(BIN) ./cmd/rtstack

test:
	$(GO) test $(TESTFLAGS) $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

# The web client in headless Chromium (apt-get install -y chromium) against
# a real `rtstack dev`; screenshots land in artifacts/e2e/.
E2E_ARTIFACTS ?= $(CURDIR)/artifacts/e2e
test-e2e:
	RTSTACK_E2E_ARTIFACTS=$(E2E_ARTIFACTS) $(GO) test -tags e2e -count=1 -timeout 15m -run TestBrowser -v ./web/

# One package at a time, so benchmarks do not share the two cores. Each
# reports its figures as a ratio against a baseline measured in the same run.
# The replays are one pass over 1,000,000 events (-benchtime 1x); the
# latency and fanout benchmarks need many iterations for their percentiles.
bench:
	$(GO) test -p 1 -run '^$$' -bench . -benchmem -timeout 30m ./infra/kafka/ ./gateway/... ./tasks/...
	$(GO) test -p 1 -run '^$$' -bench Replay -benchmem -benchtime 1x -timeout 30m ./projections/...

fmt:
	gofmt -w .

vet:
	$(GO) vet $(PKGS)

lint: vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@if [ -n "$(GOLANGCI)" ]; then $(GOLANGCI) run ./...; \
	else echo "golangci-lint not installed: gofmt and go vet only (make lint-install)"; fi

lint-install:
	$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

fuzz:
	$(GO) test ./schemas -run '^$$' -fuzz FuzzDecode -fuzztime 30s
	$(GO) test ./gateway/auth -run '^$$' -fuzz FuzzVerify -fuzztime 30s

clean:
	rm -rf bin
