# vxnet: `make run` serves the plugin on the embedded store; `make test`
# installs what the tests need, then runs unit, kernel and e2e tests.
SHELL := /bin/bash
export GOTOOLCHAIN := local
export CGO_ENABLED := 0
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PKGS     = $(shell $(GO) list ./... | grep -v /e2e)

.PHONY: build run deps test unit e2e lint fuzz faults clean bench scale plugin plugin-install

# Managed plugin: build/plugin is the directory `docker plugin create` takes
# (config.json and a rootfs holding the static binary); plugin-install
# installs it on the Docker of DOCKER_HOST as PLUGIN_NAME.
PLUGIN_NAME ?= vxnet:latest
PLUGIN_DIR  := build/plugin

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vxnet ./cmd/vxnet

# The rootfs is the static binary and the mount points config.json names.
plugin: build
	rm -rf ./$(PLUGIN_DIR)
	mkdir -p $(addprefix $(PLUGIN_DIR)/rootfs/,run/docker/plugins run/vxnet var/lib/vxnet host/proc etc tmp)
	install -m 0755 bin/vxnet $(PLUGIN_DIR)/rootfs/vxnet
	touch $(PLUGIN_DIR)/rootfs/run/docker.sock
	install -m 0644 plugin-config/config.json $(PLUGIN_DIR)/config.json

# PLUGIN_SETTINGS are `docker plugin set` arguments applied before the first
# enable, e.g. PLUGIN_SETTINGS='VXNET_STORE=consul://10.0.0.5:8500'.
# The plugin binds the host's /run/vxnet only (mount "run"), which must
# exist: made here for a local Docker; on a remote DOCKER_HOST, make it there.
plugin-install: plugin
	$(if $(DOCKER_HOST),,mkdir -p /run/vxnet)
	docker plugin create $(PLUGIN_NAME) $(PLUGIN_DIR)
	$(if $(strip $(PLUGIN_SETTINGS)),docker plugin set $(PLUGIN_NAME) $(PLUGIN_SETTINGS))
	docker plugin enable $(PLUGIN_NAME)

run: build
	./bin/vxnet serve --store bolt:///var/lib/vxnet/vxnet.db

deps:
	hack/deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 10m $(PKGS)

# The e2e tests run on two Docker versions: every suite on Debian 12's
# dockerd 20.10 (from PATH; log e2e.log), then the core suites E2E_26_TESTS
# on Docker 26.1 (Debian 13's dockerd from hack/docker26.sh, which make deps
# caches; log e2e-26.log). Both always run; either failing fails the target.
E2E_26_TESTS ?= ^(TestHarnessSmoke|TestSingleHost|TestMultiHost|TestManagedPlugin|TestSwarm|TestSwarmStack|TestNames|TestCompose|TestManagedNames)$$
E2E_SHOW     := grep -E '^(=== RUN|--- |    --- |PASS|FAIL|ok|panic)|_test.go:[0-9]+:'
e2e: build
	@d26=$$(hack/docker26.sh) || exit 1; \
	env -u VXNET_DOCKERD $(GO) test -p 1 -count=1 -timeout 60m -v ./e2e/... 2>&1 | tee e2e.log | $(E2E_SHOW); rc20=$${PIPESTATUS[0]}; \
	VXNET_DOCKERD=$$d26 $(GO) test -p 1 -count=1 -timeout 30m -v -run '$(E2E_26_TESTS)' ./e2e/... 2>&1 | tee e2e-26.log | $(E2E_SHOW); rc26=$${PIPESTATUS[0]}; \
	echo "e2e: dockerd 20.10 exit $$rc20, dockerd 26.1 exit $$rc26"; [ $$rc20 -eq 0 ] && [ $$rc26 -eq 0 ]

test: deps lint unit e2e

# Fuzz every request decoder for FUZZTIME each (make fuzz FUZZTIME=5m).
FUZZTIME ?= 20s
fuzz:
	hack/fuzz.sh $(FUZZTIME)

# The reliability suite in its full form (e2e TestFaults with
# VXNET_FAULTS=full: 100 crash cycles, a 30 s Consul outage, 3×50 parallel
# runs, leader loss, drift, bad input; `make test` runs a reduced form),
# after every fuzz target for FAULTS_FUZZTIME each (over 10^6 executions
# in all at the default). Figures: bench/results/faults.json and fuzz.json.
FAULTS_FUZZTIME ?= 2m
faults: deps
	FUZZ_RESULTS=$(CURDIR)/bench/results/fuzz.json hack/fuzz.sh $(FAULTS_FUZZTIME)
	VXNET_FAULTS=full VXNET_FUZZ_RESULTS=$(CURDIR)/bench/results/fuzz.json $(GO) test -count=1 -timeout 90m -v -run '^TestFaults$$' ./e2e/ 2>&1 | tee faults.log | grep -E '^(=== RUN|--- |    --- |PASS|FAIL|ok|panic)|_test.go:[0-9]+:'; exit $${PIPESTATUS[0]}

clean:
	rm -rf bin build e2e.log e2e-26.log faults.log bench.log

# Benchmarks (issue #13): throughput, start latency, convergence, scale and
# failure purge, side by side with Docker's bridge and swarm overlay in one
# run; results (JSON + PNG) go to bench/results/, and the README section
# generated from them to bench/results/README-section.md (again any time:
# go run ./bench/readme). Scale with
# VXNET_BENCH_ENDPOINTS (1000) and VXNET_BENCH_SPREAD (300 per host);
# VXNET_BENCH_STEPS=Throughput,Scale runs only those steps (results then in
# a temp dir). The whole run fits in 30 minutes on 2 cores.
bench: deps
	CI=true $(GO) test -tags bench -count=1 -timeout 40m -v -run '^TestBench$$' ./e2e/ 2>&1 | tee bench.log | grep -vE '^=== (RUN|NAME)'; exit $${PIPESTATUS[0]}

# Scale-out, simulated (issue #16): SCALE_HOSTS hosts (one run each) with
# the plugin's own agent on a recording data plane, against a three-server
# Consul cluster on loopback; results in bench/results/scale-out.json and
# scale-out-propagation.png.
# hack/scale.sh takes the e2e lock itself; the runs together are bounded
# by SCALE_BUDGET (a size cut off by it is recorded as failed, with the
# sizes before it).
SCALE_HOSTS ?= 10,50,100,200
SCALE_BUDGET ?= 19m
scale: build
	hack/scale.sh --hosts $(SCALE_HOSTS) --budget $(SCALE_BUDGET) --out bench/results $(SCALE_ARGS)
