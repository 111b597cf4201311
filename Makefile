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
# reports its figures as a ratio against a baseline measured in the same run;
# the table at the end collects every ratio (and the RSS per connection). The
# replays are one pass over 1,000,000 events (-benchtime 1x); the latency and
# fanout benchmarks need many iterations for their percentiles; the load
# benchmarks (BenchmarkLoad*, BenchmarkIdleConnRSS) run the load generator
# once for a fixed time. Output is kept in bin/bench.txt.
BENCH_OUT := bin/bench.txt
bench:
	@mkdir -p bin; rm -f $(BENCH_OUT) bin/bench.failed
	($(GO) test -p 1 -run '^$$' -bench . -benchmem -timeout 30m ./infra/kafka/ ./gateway/... ./tasks/... || touch bin/bench.failed) 2>&1 | tee -a $(BENCH_OUT)
	($(GO) test -p 1 -run '^$$' -bench Replay -benchmem -benchtime 1x -timeout 30m ./projections/... || touch bin/bench.failed) 2>&1 | tee -a $(BENCH_OUT)
	@echo; echo "== ratios against the baselines of the same run =="
	@# A benchmark's log lines may split its result line: the name, then the
	@# figures on a line of their own.
	@awk 'function row(from) { for (i = from; i < NF; i += 2) if ($$(i+1) ~ /ratio|x_baseline|KiB\/conn/) \
	         printf "%-22s %-28s %-26s %10s\n", pkg, name, $$(i+1), $$i } \
	     /^pkg:/ { pkg = $$2; sub(/.*rtstack\/rtstack\//, "", pkg) } \
	     /^Benchmark/ { name = $$1; sub(/-[0-9]+$$/, "", name); waiting = ($$2 !~ /^[0-9]+$$/); if (!waiting) row(3); next } \
	     waiting && /^ +[0-9]+\t/ { row(2); waiting = 0 }' $(BENCH_OUT)
	@test ! -e bin/bench.failed

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
