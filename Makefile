# vrelay — make run | test | bench | build | lint
# Everything comes from the Go module proxy at pinned versions; nothing is
# installed by hand.

GO          ?= go
CONFIG      ?= examples/quickstart.yaml
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOFILES      = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*')

.PHONY: run test lint build bench deps clean

## run: start vrelay on the quickstart config (embedded NATS, simulated vCenter, webhook, log route)
run: deps
	$(GO) run ./cmd/vrelay run -config $(CONFIG)

## test: lint, then every test with the race detector in random order
test: lint
	$(GO) test -race -shuffle=on -count=1 -timeout 20m ./...

## lint: gofmt, go vet, staticcheck (pinned)
lint: deps
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## build: a static binary in bin/
build: deps
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/...

## bench: Go benchmarks with allocations
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -timeout 20m ./...

## deps: download the pinned modules
deps:
	@command -v $(GO) >/dev/null || { echo "Go is required (see go.mod for the version)"; exit 1; }
	$(GO) mod download

clean:
	rm -rf bin data
