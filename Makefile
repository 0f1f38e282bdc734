# Chancery — build, test, benchmark.
#
#   make test    installs what the tests need, then runs every test
#   make bench   runs the benchmarks (figures go to docs/benchmarks.md)
#   make lint    gofmt check and go vet
#   make mutate  mutation testing of the guard functions (docs/testing.md)

GO        ?= go
PKGS      := ./...
# Packages with concurrency worth the race detector's time.
RACE_PKGS := ./ledger/ ./registry/ ./store/... ./seal/ ./site/ ./internal/... ./services/... ./connect/...
# Fuzz targets run briefly on every `make test`: package:target:executions.
# Every parser of outside input has one. Budgets are execution counts, not
# durations: Go 1.26's coordinator can fail a duration-bounded run with a
# bare "context deadline exceeded" at the deadline (golang/go#75804), and a
# count has no deadline to race. FUZZSCALE multiplies every budget.
FUZZSCALE ?= 3
FUZZ := \
	ledger:FuzzDecodeEntry:20000 \
	ledger:FuzzParseCheckpoint:20000 \
	ledger:FuzzParseTilePath:20000 \
	ledger:FuzzWALFrame:20000 \
	ledger:FuzzSplitBundle:20000 \
	ledger:FuzzOpenCheckpoint:10000 \
	charter:FuzzParse:3000 \
	continuity:FuzzParseSignedOrder:20000 \
	registry:FuzzUnmarshalRecordEntry:20000 \
	registry:FuzzTopLevelFields:20000 \
	registry:FuzzIJSON:20000 \
	registry:FuzzValidJSON:20000 \
	replica:FuzzParseBatch:20000 \
	bundle:FuzzParseManifest:20000 \
	seal:FuzzParseCustodyPackage:300 \
	seal:FuzzParseShare:10000 \
	seal:FuzzOpen:10000 \
	store:FuzzRefUnmarshal:20000 \
	store:FuzzPackTail:20000 \
	store:FuzzIndexObject:20000 \
	siteapi:FuzzParseSignatureHeader:20000 \
	site:FuzzParseConfig:3000 \
	services/identity:FuzzParseEIDResponse:20000 \
	services/identity:FuzzParseVerifyRequest:20000 \
	services/identity:FuzzParseWebAuthn:10000 \
	services/identity:FuzzAssertionID:20000 \
	services/identity:FuzzParseDPoPProof:20000 \
	services/identity:FuzzDPoPNonce:20000 \
	services/identity:FuzzTokenDecrypt:20000 \
	services/access:FuzzLinkValue:20000 \
	services/access:FuzzOpenSealed:10000 \
	services/extract:FuzzVerify:5000 \
	services/extract:FuzzReceipt:5000 \
	services/extract:FuzzReadPDF:5000 \
	services/extract/sdjwt:FuzzVerify:10000 \
	services/extract/offline:FuzzBase45:20000 \
	services/extract/offline:FuzzBase45RoundTrip:20000 \
	services/extract/offline:FuzzParseClaims:20000 \
	services/extract/offline:FuzzDecodeText:20000 \
	services/extract/offline:FuzzToBeSigned:20000 \
	services/procedure:FuzzParseDocument:1000 \
	services/procedure:FuzzDecodeSubmission:10000 \
	services/procedure:FuzzValidateInput:10000 \
	services/notice:FuzzParse:10000 \
	services/notice:FuzzParseAtomProofs:10000 \
	services/notice:FuzzParseJSONProofs:10000 \
	site:FuzzParseExtractStatus:20000 \
	site:FuzzParseMessageRequest:20000 \
	connect/postgres:FuzzBinaryForms:20000
# The real S3 server the store suite runs against (Apache-2.0).
VERSITYGW := github.com/versity/versitygw/cmd/versitygw@v1.8.0
GOBIN     := $(shell $(GO) env GOPATH)/bin

.PHONY: all build test deps unit race fuzz lint mutate bench bench-peer bench-restic bench-litestream demo clean

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
	@scripts/apt-install.sh 'command -v chromium || command -v chromium-browser' chromium
	@scripts/apt-install.sh 'ls /usr/lib/postgresql/*/bin/initdb' postgresql

test: deps lint unit race fuzz

# CI=true makes the S3 half of the store suite fail instead of skipping
# when the server is missing (internal/s3test), and the power-loss tests
# when /dev/fuse is (internal/lazyfs; they mount with go-fuse's
# DirectMount as root, so no fusermount package is needed).
unit:
	$(GO) test -count=1 -timeout 20m $(PKGS)
	CHANCERY_SCHEDULE_HAZARDS=pick,heal CHANCERY_SCHEDULE_ROUNDS=2 CHANCERY_SCHEDULE_SEEDS=20 CHANCERY_SCHEDULE_FIRST=1001 \
		$(GO) test -count=1 -timeout 20m -run '^TestRandomSchedules$$' ./tests/system/

# Under -race, TestFillWithheld (three sites in one process) runs despite
# -short, and the process tests build their chancery binary with -race
# too (internal/testnet): a race report in a site's log fails the test.
# replica's suite under -short is its own line (the issue budgets 15 s;
# 64 s measured at a load average of 25): the shippers, tracker, receivers
# and the three-site fixture in one process.
race:
	$(GO) test -count=1 -race -timeout 20m -short $(RACE_PKGS)
	$(GO) test -count=1 -race -timeout 5m -short ./replica/

# Mutation testing of the guard functions: each package's guards, against
# the tests that exercise them, one mutant at a time through go test
# -overlay (tools/mutate). Prints the survivors with file:line and the
# score; MUTATEBUDGET bounds each package's run (mutants left are reported
# NOT RUN). Not part of `make test`: about an hour on two loaded cores.
MUTATEBUDGET ?= 15m
MUTATE = $(GO) run ./tools/mutate -budget $(MUTATEBUDGET)
mutate:
	$(MUTATE) -pkg ./charter -funcs '^(Rule\.(Satisfied|eligible|match)|VerifySignatures|VerifyChain|checkLink|signerKey)$$'
	$(MUTATE) -pkg ./continuity -funcs '^(Verify|Check|State\.check|wantEpoch|raisesEpoch|checkCharterFields|Epochs\.(applyLocked|Accept)|UnsealSession\.(usable|Submit|Combine))$$'
	$(MUTATE) -pkg ./seal -short -funcs '^(BlobKeys\.Open|RegistryKeys\.(Open|openFramed|checkAD|generation|VerifyCommit|VerifyCommitRecord)|CustodyPackage\.(VerifyShare|Combine|OpenShare)|SiteKey\.Open|Keyring\.UnwrapSiteKey|OpenSealedShare)$$'
	$(MUTATE) -pkg ./ledger -short -funcs '^(OpenCheckpoint|isCosigner|Log\.AppendMirrored|VerifyInclusion|VerifyConsistency|CosignatureTime|CosignatureVerifier\.Verify)$$' \
		-run '^(TestOpenCheckpoint|TestCosignatureTime|TestMirror|FuzzOpenCheckpoint|TestFill|TestProperty(Tree|Log)Proofs|TestVerify|TestAppendReopenVerify|TestInterop|TestParseCheckpoint)'
	$(MUTATE) -pkg ./replica -short -funcs '^(Receiver\.(Accept|PutObject|Missing|Locate|Object)|OpenReceipt|openCheckpointWith|withCosigner\.Verifier|Placement\.(Registry|Entry)|CanCatchUpFrom|HomeWriter\.Verifiers)$$' \
		-run '^(TestFencedReceiver|TestWriterKey|TestOpenReceipt|TestQuota|TestReceiverRefusals|TestObjectGuards|TestReceiverRefusesWhatItCannotPlace|TestReceiverRefusesOverDamagedRightEdge|TestAccept|TestCanCatchUpFrom|TestBundlePlacement|TestPlacementOnDisk|TestPeerCatchUp)'
	$(MUTATE) -pkg ./site -short -files '^auth\.go$$' -funcs '^(authenticator\.authenticate|nonceCache\.add)$$' \
		-run '^(TestAuth|TestSignatureHeaderOnlyOnce|TestSkewWindowEdges|TestNonceCacheBounded|TestReplayInsideSkewWindowRefused)'
	$(MUTATE) -pkg ./guest -tests ./site -short -files '^continuity\.go$$' -funcs '^(epochWriters\.Learn|Guest\.submit)$$' \
		-run '^(TestOrdersOverHTTPUseTheSiteClock|TestOnlyOwnActivationFencesPeers|TestForgedOrderInBatchRefused|TestActivationWithEveryEmbassyFenced|TestFailbackHandOver|TestFailbackFencesWrites)'

fuzz:
	@set -e; for t in $(FUZZ); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$$(( $${rest##*:} * $(FUZZSCALE) )); \
		echo "fuzz $$pkg $$name ($$n executions)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $${n}x -fuzzminimizetime 5s ./$$pkg/ ; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	cd bench && $(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s $(PKGS)

bench-peer:
	bench/run.sh

bench-restic:
	bench/restic/run.sh

bench-litestream:
	bench/litestream/run.sh

demo:
	$(GO) run ./cmd/chancery demo

clean:
	rm -rf bin
