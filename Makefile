# Chancery — build, test, benchmark.
#
#   make test    installs what the tests need, then runs every test
#   make bench   runs the benchmarks (figures go to docs/benchmarks.md)
#   make lint    gofmt check and go vet

GO        ?= go
PKGS      := ./...
# Packages with concurrency worth the race detector's time.
RACE_PKGS := ./ledger/ ./registry/ ./store/... ./seal/ ./site/ ./internal/...
FUZZTIME  ?= 4s
# Fuzz targets run briefly on every `make test`: package:target. Every
# parser of outside input has one.
FUZZ := \
	ledger:FuzzDecodeEntry \
	ledger:FuzzParseCheckpoint \
	ledger:FuzzParseTilePath \
	ledger:FuzzWALFrame \
	ledger:FuzzSplitBundle \
	ledger:FuzzOpenCheckpoint \
	charter:FuzzParse \
	registry:FuzzUnmarshalRecordEntry \
	seal:FuzzParseCustodyPackage \
	seal:FuzzParseShare \
	seal:FuzzOpen \
	store:FuzzRefUnmarshal \
	store:FuzzPackTail \
	store:FuzzIndexObject \
	site:FuzzParseSigHeader \
	site:FuzzParseConfig
# The real S3 server the store suite runs against (Apache-2.0).
VERSITYGW := github.com/versity/versitygw/cmd/versitygw@v1.8.0
GOBIN     := $(shell $(GO) env GOPATH)/bin

.PHONY: all build test deps unit race fuzz lint bench bench-peer demo clean

all: build

build:
	$(GO) build -o bin/chancery ./cmd/chancery

deps:
	$(GO) mod download
	cd bench && $(GO) mod download
	@if [ -x "$(GOBIN)/versitygw" ] && $(GO) version -m "$(GOBIN)/versitygw" | grep -q 'versitygw.*v1\.8\.0'; then \
		echo "versitygw v1.8.0 present"; \
	else \
		echo "installing $(VERSITYGW) (the S3 server the store tests run against)"; \
		$(GO) install $(VERSITYGW); \
	fi

test: deps lint unit race fuzz

# CI=true makes the S3 half of the store suite fail instead of skipping
# when the server is missing (internal/s3test).
unit:
	$(GO) test -count=1 -timeout 20m $(PKGS)

race:
	$(GO) test -count=1 -race -timeout 20m -short $(RACE_PKGS)

fuzz:
	@set -e; for t in $(FUZZ); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg/ ; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	cd bench && $(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s $(PKGS)

bench-peer:
	bench/run.sh

demo:
	$(GO) run ./cmd/chancery demo

clean:
	rm -rf bin
