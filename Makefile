# rtstack — the two commands: `make run` and `make test`.
GO        ?= go
BIN       := bin/rtstack
PKGS      := ./...
# Integration tests share one Postgres/Redis/RabbitMQ; two packages at a time
# keeps the 2-core machine responsive without serialising everything.
TESTFLAGS ?= -race -count=1 -p 2 -timeout 30m

.PHONY: run build test test-short bench lint fmt vet fuzz clean

run: build
	./$(BIN) dev

build:
	@mkdir -p bin
	$(GO) build -o $(BIN) ./cmd/rtstack

test:
	$(GO) test $(TESTFLAGS) $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 30m $(PKGS)

fmt:
	gofmt -w .

vet:
	$(GO) vet $(PKGS)

lint: vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@if command -v golangci-lint >/dev/null 2>&1; then golangci-lint run ./...; \
	else echo "golangci-lint not installed: gofmt and go vet only (go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@latest)"; fi

fuzz:
	$(GO) test ./schemas -run '^$$' -fuzz FuzzDecode -fuzztime 30s
	$(GO) test ./gateway/auth -run '^$$' -fuzz FuzzVerify -fuzztime 30s

clean:
	rm -rf bin
