# vrelay — make run | test | bench | build | lint
# Everything comes from the Go module proxy at pinned versions; nothing is
# installed by hand.

GO          ?= go
CONFIG      ?= examples/quickstart.yaml
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOFILES      = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*')
# The nats CLI that the end-to-end test drives (cmd/vrelay/natscli_e2e_test.go),
# built from the module proxy once and cached outside the clone, so a fresh
# clone pays the ~2 min build only the first time on a machine.
NATSCLI_VERSION := v0.5.0
NATSCLI_DIR     ?= $(HOME)/.cache/vrelay/natscli-$(NATSCLI_VERSION)
NATSCLI         := $(NATSCLI_DIR)/nats

.PHONY: run test lint build bench deps clean natscli

## run: start vrelay on the quickstart config (embedded NATS, simulated vCenter, webhook, log route)
run: deps
	$(GO) run ./cmd/vrelay run -config $(CONFIG)

## test: lint, then every test with the race detector in random order,
## the nats CLI end-to-end test included
test: lint natscli
	VRELAY_NATS_CLI=$(NATSCLI) $(GO) test -race -shuffle=on -count=1 -timeout 20m ./...

## natscli: build the pinned nats CLI into $(NATSCLI_DIR) unless it is there
natscli: $(NATSCLI)

$(NATSCLI):
	GOBIN=$(NATSCLI_DIR) $(GO) install github.com/nats-io/natscli/nats@$(NATSCLI_VERSION)

## lint: gofmt, go.mod tidy, go vet, staticcheck (pinned)
lint: deps
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## build: a static binary in bin/
build: deps
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/...

# The packages with Go benchmarks, and how long each benchmark runs, so that
# the whole of `make bench` stays under 10 minutes on two cores.
BENCH_PKGS ?= ./streams ./filters ./producers ./producers/webhook ./producers/vcenter ./producers/horizon \
	./consumers ./consumers/httpsink ./consumers/eventbridge ./internal/flowtest
BENCHTIME  ?= 1s
# BENCHFLAGS go to cmd/vrelay-bench, e.g. BENCHFLAGS='-only pipeline -rounds 4'.
BENCHFLAGS ?=

## bench: Go benchmarks with allocations, then the end-to-end scenarios of
## cmd/vrelay-bench; prints one `bench: <name> <value> <unit>` line per figure,
## writes bench-results.json and the figures in BENCHMARKS.md (see there)
bench: deps
	@start=$$(date +%s); out=$$(mktemp); \
	{ $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 10m $(BENCH_PKGS) 2>&1; \
	  echo $$? > $$out.rc; } | tee $$out; \
	rc=$$(cat $$out.rc); \
	if [ "$$rc" = 0 ]; then \
	  $(GO) run ./cmd/vrelay-bench -gobench $$out -json bench-results.json -md BENCHMARKS.md -since $$start $(BENCHFLAGS); \
	  rc=$$?; \
	fi; \
	rm -f $$out $$out.rc; exit $$rc

## deps: download the pinned modules
deps:
	@command -v $(GO) >/dev/null || { echo "Go is required (see go.mod for the version)"; exit 1; }
	$(GO) mod download

clean:
	rm -rf bin data
