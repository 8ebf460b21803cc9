# vxnet: `make run` serves the plugin on the embedded store; `make test`
# installs what the tests need, then runs unit, kernel and e2e tests.
SHELL := /bin/bash
export GOTOOLCHAIN := local
export CGO_ENABLED := 0
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PKGS     = $(shell $(GO) list ./... | grep -v /e2e)

.PHONY: build run deps test unit e2e lint fuzz clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vxnet ./cmd/vxnet

run: build
	./bin/vxnet serve --store bolt:///var/lib/vxnet/vxnet.db

deps:
	hack/deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 10m $(PKGS)

e2e: build
	$(GO) test -count=1 -timeout 40m -v ./e2e/... 2>&1 | tee e2e.log | grep -E '^(=== RUN|--- |    --- |PASS|FAIL|ok|panic)|_test.go:[0-9]+:'; exit $${PIPESTATUS[0]}

test: deps lint unit e2e

# Fuzz every request decoder for FUZZTIME each (make fuzz FUZZTIME=5m).
FUZZTIME ?= 20s
fuzz:
	hack/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin build e2e.log
