# Legate — an Envoy-config-compatible proxy in Go.
#
#   make demo    build, then run the front-proxy case study (Ctrl-C stops it)
#   make test    build, vet, then run every test (integration tests use bin/)
#   make lint    gofmt, go vet, staticcheck
#   make bench   Legate vs nginx vs haproxy on pinned cores (needs nginx, haproxy, wrk)

GO          ?= go
BIN         := $(CURDIR)/bin
# staticcheck's module version v0.8.2 is release 2026.2.2; pinned so lint is reproducible.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_TIMEOUT ?= 15m
BENCH_FLAGS ?=

# Static binaries: no C toolchain needed, same behaviour everywhere.
export CGO_ENABLED := 0

.PHONY: all build demo test lint bench clean

all: build

build:
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

demo: build
	$(BIN)/legate-demo --legate $(BIN)/legate --service $(BIN)/demo-service

# Integration tests (test/...) run the binaries built above; LEGATE_BIN tells
# them where (legate-demo and demo-service sit next to it).
test: build
	$(GO) vet ./...
	LEGATE_BIN=$(BIN)/legate $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench: build
	$(GO) run ./bench/run --legate $(BIN)/legate $(BENCH_FLAGS)

clean:
	rm -rf $(BIN)
