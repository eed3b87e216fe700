# Legate — an Envoy-config-compatible proxy in Go.
#
#   make demo    build, then run the front-proxy case study (Ctrl-C stops it)
#   make demo-xds the same with service discovery through legate-cp over xDS
#   make test    build, vet, then run every test (integration tests use bin/)
#   make lint    gofmt, go vet, staticcheck
#   make fuzz    every native fuzz target for FUZZTIME each (docs/security.md)
#   make bench   Legate vs nginx vs haproxy on pinned cores (needs nginx, haproxy, wrk)
#   make deb     dist/legate_<version>-1_<arch>.deb (see docs/operations.md)
#   make image   container images legate, legate-cp and legate-demo-service (:<version>)

GO          ?= go
BIN         := $(CURDIR)/bin
# staticcheck's module version v0.8.2 is release 2026.2.2; pinned so lint is reproducible.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_TIMEOUT ?= 15m
BENCH_FLAGS ?=

DIST        := $(CURDIR)/dist

# Static binaries: no C toolchain needed, same behaviour everywhere.
export CGO_ENABLED := 0

# What `legate --version` reports. VERSION is the newest release in
# CHANGELOG.md; COMMIT and the build date come from the last commit, never the
# clock, so two builds of one commit are byte-identical (with -trimpath and an
# empty build id). Each can be overridden, e.g. in a tree without .git.
ifeq ($(origin VERSION),undefined)
VERSION := $(shell sed -n 's/^## \([0-9][^ ]*\) - .*/\1/p' CHANGELOG.md | head -n 1)
endif
ifeq ($(origin COMMIT),undefined)
COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
endif
# TREE is Envoy's "Clean"/"Modified": whether the build had uncommitted
# changes (a tree without .git counts as clean).
ifeq ($(origin TREE),undefined)
TREE := $(shell if git rev-parse --git-dir >/dev/null 2>&1; then git diff --quiet HEAD -- 2>/dev/null && echo Clean || echo Modified; else echo Clean; fi)
endif
ifeq ($(origin SOURCE_DATE_EPOCH),undefined)
SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
endif
export SOURCE_DATE_EPOCH
BUILD_DATE  := $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
VERSION_PKG := github.com/legate-proxy/legate/internal/version
# -s -w: no symbol table or DWARF (Debian ships stripped binaries; stack
# traces still work).
LDFLAGS     := -s -w -buildid= -X $(VERSION_PKG).Version=$(VERSION) \
               -X $(VERSION_PKG).Commit=$(COMMIT) -X $(VERSION_PKG).BuildDate=$(BUILD_DATE) \
               -X $(VERSION_PKG).Tree=$(TREE)
GOBUILD     := $(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)'
IMAGE_TAG   ?= $(VERSION)
# What `make build` builds; a subset (e.g. CMDS=./cmd/legate) builds faster.
CMDS        ?= ./cmd/...

.PHONY: all build demo demo-xds test lint fuzz bench clean deb image version

all: build

build:
	@test -n "$(VERSION)" || { echo "CHANGELOG.md has no '## <version> - <date>' heading"; exit 1; }
	$(GOBUILD) -o $(BIN)/ $(CMDS)

version:
	@echo $(VERSION)

# The .deb is assembled by packaging/mkdeb (nfpm as a library) from bin/.
deb: build
	$(GO) run -trimpath ./packaging/mkdeb -bin $(BIN) -root packaging -changelog CHANGELOG.md -out $(DIST)

# FROM scratch images from the static binaries; nothing is pulled.
image: build
	BIN=$(BIN) IMAGE_TAG=$(IMAGE_TAG) VERSION=$(VERSION) COMMIT=$(COMMIT) BUILD_DATE=$(BUILD_DATE) \
		packaging/docker/build-images.sh

demo: build
	$(BIN)/legate-demo --legate $(BIN)/legate --service $(BIN)/demo-service

# The case study with service discovery: replicas register with legate-cp,
# which serves Legate over ADS (docs/control-plane.md).
demo-xds: build
	$(BIN)/legate-demo --xds --legate $(BIN)/legate --service $(BIN)/demo-service --legate-cp $(BIN)/legate-cp

# Integration tests (test/...) run the binaries built above; LEGATE_BIN tells
# them where (legate-demo and demo-service sit next to it).
test: build
	$(GO) vet ./...
	LEGATE_BIN=$(BIN)/legate $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	@# The end-to-end suite again, against the proxy built with the race
	@# detector: races between a stream and the goroutines it hands its body
	@# to only show there, and between xDS updates and the requests they
	@# must not disturb (a race makes the proxy exit non-zero).
	CGO_ENABLED=1 $(GO) build -race -o $(BIN)/race/ ./cmd/legate ./cmd/legate-cp
	LEGATE_BIN=$(BIN)/race/legate $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./test/integration ./test/xds

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Go fuzzes one target per invocation, so each package's targets are listed
# (go test -list) and run in turn. The packages are those with a Fuzz
# function in a _test.go file; FUZZ_PKGS narrows them (e.g.
# FUZZ_PKGS=./internal/http/http1), FUZZ_FLAGS adds flags (-parallel 1).
# New crashers land in the package's testdata/fuzz/<FuzzName>/: commit them
# with the fix, they then run with every `go test`.
FUZZTIME   ?= 30s
FUZZ_FLAGS ?=
FUZZ_PKGS  ?= $(shell grep -rl --include='*_test.go' '^func Fuzz' internal cmd test 2>/dev/null | xargs -r -n1 dirname | sort -u | sed 's|^|./|')

fuzz:
	@failed=""; \
	for pkg in $(FUZZ_PKGS); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $(FUZZ_FLAGS) $$pkg || failed="$$failed $$pkg:$$t"; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz failures:$$failed"; exit 1; fi

bench: build
	$(GO) run ./bench/run --legate $(BIN)/legate $(BENCH_FLAGS)

clean:
	rm -rf $(BIN) $(DIST)
