# vrelay — make run | test | bench | build | lint
# Everything comes from the Go module proxy at pinned versions; nothing is
# installed by hand.

GO          ?= go
CONFIG      ?= examples/quickstart.yaml
RUNBIN      ?= bin/vrelay
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOFILES      = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*')
# The nats CLI that the end-to-end test drives (cmd/vrelay/natscli_e2e_test.go),
# built from the module proxy once and cached outside the clone, so a fresh
# clone pays the ~2 min build only the first time on a machine.
NATSCLI_VERSION := v0.5.0
NATSCLI_DIR     ?= $(HOME)/.cache/vrelay/natscli-$(NATSCLI_VERSION)
NATSCLI         := $(NATSCLI_DIR)/nats

.PHONY: run test fuzz lint build bench deps clean natscli chromium

## run: start vrelay on the quickstart config (embedded NATS, simulated vCenter, webhook, log route)
# Built, then exec'd: `go run` would exit 1 when Ctrl-C stops vrelay, and
# make would report "Error 1" for a clean stop.
run: deps
	$(GO) build -o $(RUNBIN) ./cmd/vrelay
	exec $(RUNBIN) run -config $(CONFIG)

## test: lint, then every test with the race detector in random order, the
## nats CLI end-to-end test, the tests against a real kube-apiserver and
## the event viewer's test in headless Chromium included (the tools are
## built once and cached outside the clone; chromium comes from apt)
test: lint natscli k8s-tools helm chromium
	VRELAY_NATS_CLI=$(NATSCLI) VRELAY_K8S_BIN=$(K8S_BIN) VRELAY_HELM=$(HELM) VRELAY_CHROMIUM=$$(command -v $(CHROMIUM)) \
		$(GO) test -race -shuffle=on -count=1 -timeout 20m ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZ_SMOKE)

# The fuzz targets, as <package>:<FuzzName> (go test fuzzes one target per
# run). The unit tests above already run their seed corpora
# (testdata/fuzz/<FuzzName> and f.Add); `make test` then fuzzes each one for
# FUZZ_SMOKE, `make fuzz` for FUZZTIME.
FUZZ_TARGETS := ./producers/webhook:FuzzHandler ./internal/config:FuzzParse \
	./producers/vcenter:FuzzConvert ./producers/horizon:FuzzConvert ./filters:FuzzCompile \
	./streams:FuzzCodecRoundTrip ./streams:FuzzUpgradeV1 ./streams:FuzzParseDeadLetter \
	./streams:FuzzDecode ./streams:FuzzMarshal ./internal/jsonscan:FuzzValid ./filters:FuzzTransformCompile \
	./filters:FuzzMatchPaths
FUZZ_SMOKE ?= 3s
FUZZTIME   ?= 2m

## fuzz: each of FUZZ_TARGETS for FUZZTIME (default 2m), one after the
## other; an input that fails is written to the package's testdata/fuzz,
## where it stays as a regression seed once the bug is fixed
fuzz: deps
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

## natscli: build the pinned nats CLI into $(NATSCLI_DIR) unless it is there
natscli: $(NATSCLI)

$(NATSCLI):
	GOBIN=$(NATSCLI_DIR) $(GO) install github.com/nats-io/natscli/nats@$(NATSCLI_VERSION)

# The browser that the event viewer's end-to-end test drives
# (internal/ui/browser_test.go, through VRELAY_CHROMIUM): Debian's chromium
# package, installed only when missing.
CHROMIUM ?= chromium

## chromium: install Debian's chromium with apt-get unless it is there
chromium:
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { \
	  echo "installing chromium with apt-get"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; \
	}

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

# k8s-tools: kube-apiserver, kubectl and etcd built from the nested module
# tools/k8s (kept out of our go.mod), plus the Knative CRDs read from the module
# cache of knative.dev/operator, for the tests that need a real API server
# (internal/k8stest; they find this folder in VRELAY_K8S_BIN and skip without it).
# Cached outside the clone, keyed by tools/k8s/go.sum, so a fresh clone in CI
# reuses it; cold ~4.5 min on 2 cores, a no-op when the stamp is there.
K8S_VERSION := v1.37.2
K8S_BIN     ?= $(HOME)/.cache/vrelay/k8s-$(K8S_VERSION)-$(shell cd tools/k8s && sha256sum go.sum | cut -c1-12)
KNATIVE_OPERATOR := knative.dev/operator@v0.42.2
K8S_X = -X $(1)/version.gitVersion=$(K8S_VERSION) -X $(1)/version.gitMajor=1 -X $(1)/version.gitMinor=37 -X $(1)/version.gitTreeState=clean

.PHONY: k8s-tools
k8s-tools: $(K8S_BIN)/.stamp
$(K8S_BIN)/.stamp:
	@mkdir -p $(K8S_BIN)
	cd tools/k8s && $(GO) build -trimpath -ldflags "-s -w $(call K8S_X,k8s.io/component-base) $(call K8S_X,k8s.io/client-go/pkg)" \
		-o $(K8S_BIN)/ k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
	cd tools/k8s && $(GO) build -trimpath -ldflags "-s -w" -o $(K8S_BIN)/etcd go.etcd.io/etcd/server/v3
	@dir=$$(cd tools/k8s && $(GO) mod download -json $(KNATIVE_OPERATOR) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	  test -n "$$dir" || { echo "cannot download $(KNATIVE_OPERATOR)"; exit 1; }; \
	  cp $$dir/cmd/operator/kodata/knative-eventing/1.15.0/1-eventing-crds.yaml \
	     $$dir/cmd/operator/kodata/knative-serving/1.15.2/1-serving-crds.yaml $(K8S_BIN)/ && chmod 644 $(K8S_BIN)/*.yaml
	@touch $@
	@echo "k8s tools in $(K8S_BIN)" 

# helm: the helm CLI built from the nested module tools/helm (kept out of our
# go.mod), for the chart checks in internal/chart (helm lint, helm template,
# then a server-side apply of every rendered object to the real API server of
# k8s-tools); they find it in VRELAY_HELM and skip without it. Cached outside
# the clone, keyed by tools/helm/go.sum; cold ~80 s on 2 cores, a no-op when
# the stamp is there.
HELM_VERSION := v3.22.0
HELM_DIR     ?= $(HOME)/.cache/vrelay/helm-$(HELM_VERSION)-$(shell cd tools/helm && sha256sum go.sum | cut -c1-12)
HELM         := $(HELM_DIR)/helm

.PHONY: helm
helm: $(HELM_DIR)/.stamp
$(HELM_DIR)/.stamp:
	@mkdir -p $(HELM_DIR)
	cd tools/helm && $(GO) build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION)" -o $(HELM) helm.sh/helm/v3/cmd/helm
	@touch $@
	@echo "helm in $(HELM_DIR)"
