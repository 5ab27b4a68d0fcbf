# pgdrill: every target a user or CI needs. `make test` is what CI runs (.ci/run).
CARGO   ?= cargo
PGDRILL := target/debug/pgdrill
JOBS    ?= 2

# Kubernetes backend on a local kind cluster (docs/kube-backend.md). FLAVOUR is the CNPG backup
# integration: in-tree (spec.backup.barmanObjectStore) or plugin (barman-cloud plugin). kind-up
# installs the plugin and cert-manager when KIND_PLUGIN=1, which FLAVOUR=plugin implies.
KIND_CLUSTER             ?= pgdrill
FLAVOUR                  ?= in-tree
KIND_PLUGIN              ?= $(if $(filter plugin,$(FLAVOUR)),1,0)
KIND_NODE_IMAGE          ?=
KIND_S3_ENDPOINT         ?= http://127.0.0.1:4566
KIND_CLUSTER_S3_ENDPOINT ?= http://localstack.pgdrill-system.svc.cluster.local:4566
KIND_S3_BUCKET           ?= pgdrill
KIND_S3_ACCESS_KEY       ?= test
KIND_S3_SECRET_KEY       ?= test
KIND_S3_REGION           ?= us-east-1
KIND_SCENARIOS           ?= scenarios
KIND_KUBECONFIG          := target/kind-$(KIND_CLUSTER).kubeconfig
KIND_ENV = KIND_CLUSTER='$(KIND_CLUSTER)' KIND_PLUGIN='$(KIND_PLUGIN)' KIND_NODE_IMAGE='$(KIND_NODE_IMAGE)' \
           KIND_S3_ENDPOINT='$(KIND_S3_ENDPOINT)' KIND_S3_BUCKET='$(KIND_S3_BUCKET)'

.PHONY: all build setup system-deps promtool drill test test-offline test-local test-live test-tiers fuzz bench \
        fmt lint kind-up kind-down drill-kind cluster-deps cluster-build cluster-up cluster-down \
        cluster-status drill-cluster

all: build

build:
	$(CARGO) build --locked

# OS packages the toolchain needs, and chromium for tests/local_html.rs (report.html rendered
# headless; without it that test says it did not run, and fails under CI); installed only when
# missing and only as root with apt.
system-deps:
	@need=""; \
	command -v pg_config >/dev/null 2>&1 || need="$$need libpq-dev"; \
	command -v gcc >/dev/null 2>&1 || need="$$need gcc"; \
	/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$$need python3-venv"; \
	command -v npm >/dev/null 2>&1 || need="$$need nodejs npm"; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$need"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need; \
	  else echo "missing:$$need (install them, then re-run make setup)"; exit 1; fi; \
	fi; \
	if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing: chromium"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "note: no /usr/bin/chromium: tests/local_html.rs will say it did not run (apt-get install chromium)"; fi; \
	fi

# barman-cloud in a venv, PostgreSQL binaries for every major the scenarios use, the OS user.
setup: system-deps build
	$(PGDRILL) setup

# Prometheus's promtool for the alert-rule tests (tests/local_prometheus.rs), built from the
# Prometheus Go module scripts/promtool/go.mod pins and cached under the pgdrill home (a no-op
# once built). Without Go (exit 3) it says so, and the tests say they did not run; with CI set
# that is a failure.
promtool:
	@p=$$(bash scripts/promtool.sh); rc=$$?; \
	if [ $$rc = 0 ]; then echo "promtool: $$p"; \
	elif [ $$rc = 3 ] && [ -z "$$CI" ]; then echo "$@: no promtool: tests/local_prometheus.rs will say it did not run"; \
	else exit $$rc; fi

# Run every scenario in scenarios/ for real; reports in reports/latest/.
drill: setup
	$(PGDRILL) run --jobs $(JOBS) scenarios

# Tests in three tiers; an integration test's tier is the prefix of its file name:
#   offline  unit and snapshot tests (lib, bin) and tests/offline_*.rs (manifests, the API-server
#            double, the CLI's refusals, the architecture check): no PostgreSQL, no S3
#            endpoint, no cluster, no `make setup`. The edit-compile loop: `make test-offline`.
#   local    tests/local_*.rs: real PostgreSQL and barman-cloud on this machine (`make setup`):
#            local drills, and the kube backend against the API-server double where it needs a
#            real PostgreSQL behind the double.
#   live     tests/live_*.rs: the kube backend on the live one-node cluster, brought up here when
#            running as root (it stays up for the next run; make cluster-down stops it).
# `make test` runs every tier, and refuses a tests/*.rs file that is in none (test-tiers).
tier_tests    = $(patsubst tests/%.rs,--test %,$(sort $(wildcard $(1))))
OFFLINE_TESTS := $(call tier_tests,tests/offline_*.rs)
LOCAL_TESTS   := $(call tier_tests,tests/local_*.rs)
LIVE_TESTS    := $(call tier_tests,tests/live_*.rs)
UNTIERED      := $(filter-out tests/offline_% tests/local_% tests/live_%,\
                   $(wildcard tests/*.rs))
TEST_OFFLINE   = $(CARGO) test --locked --lib --bins $(OFFLINE_TESTS)
TEST_LOCAL     = $(CARGO) test --locked $(LOCAL_TESTS)
TEST_LIVE      = $(CARGO) test --locked $(LIVE_TESTS)
LIVE_CLUSTER   = if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory cluster-up; \
                 else echo "$@: not root, so no live cluster: tests/live_kube.rs will say it did not run"; fi

test: test-tiers setup promtool
	@$(LIVE_CLUSTER)
	$(TEST_OFFLINE)
	$(TEST_LOCAL)
	$(TEST_LIVE)

test-offline: test-tiers
	$(TEST_OFFLINE)

test-local: test-tiers setup promtool
	$(TEST_LOCAL)

test-live: test-tiers setup
	@$(LIVE_CLUSTER)
	$(TEST_LIVE)

test-tiers:
	@untiered='$(strip $(UNTIERED))'; if [ -n "$$untiered" ]; then \
	  echo "test-tiers: in no tier (name it offline_*, local_* or live_*): $$untiered"; exit 1; fi

# Longer fuzzing of what pgdrill reads from others (tests/offline_fuzz.rs; `make test` runs it
# for 24 s of fuzzing in all, about 16 s wall, with a fixed seed): FUZZ_SECONDS in all, a new seed each run unless FUZZ_SEED
# is given. A failure prints the seed, the case, how it was made and where its input was saved.
FUZZ_SECONDS ?= 300
FUZZ_SEED    ?= $(shell date +%s)
fuzz:
	PGDRILL_FUZZ_SECONDS=$(FUZZ_SECONDS) PGDRILL_FUZZ_SEED=$(FUZZ_SEED) \
	  $(CARGO) test --locked --test offline_fuzz -- --nocapture

# Figures, never assertions: wall time, RTO phases, archive lag, peak memory of a fixed set of
# drills run one at a time (BENCH_SCENARIOS to choose others).
BENCH_SCENARIOS ?=
# Then the size sweep (scripts/bench-sweep.sh): BENCH_SWEEP points SIZE:WAL, each a bulk drill
# recovered by pgdrill and again by hand with the same barman-cloud commands, and the RTO model
# fitted over them (BENCH_SWEEP= skips it; BENCH_PREDICT the production size to predict).
BENCH_SWEEP ?= 64MiB:32MiB 64MiB:512MiB 512MiB:128MiB 2GiB:64MiB
bench: setup
	bash scripts/bench.sh $(PGDRILL) $(BENCH_SCENARIOS)
	@if [ -n "$(strip $(BENCH_SWEEP))" ]; then BENCH_SWEEP='$(BENCH_SWEEP)' bash scripts/bench-sweep.sh $(PGDRILL); fi

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# A one-node kind cluster (kind-config.yaml) with the CNPG operator, LocalStack and the bucket;
# KIND_PLUGIN=1 (or FLAVOUR=plugin) adds cert-manager and the barman-cloud plugin. Re-runnable.
kind-up:
	@$(KIND_ENV) bash scripts/kind-up.sh

kind-down:
	@KIND_CLUSTER='$(KIND_CLUSTER)' bash scripts/kind-down.sh

# Every scenario against the kind cluster, with a kubeconfig of that cluster only (never the
# current context); reports in reports/latest/.
drill-kind: build
	@command -v kind >/dev/null 2>&1 || { echo "drill-kind: kind not found; install it and run make kind-up first"; exit 3; }
	@kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || { echo "drill-kind: no kind cluster '$(KIND_CLUSTER)'; run make kind-up$(if $(filter 1,$(KIND_PLUGIN)), KIND_PLUGIN=1,) first"; exit 3; }
	@mkdir -p $(dir $(KIND_KUBECONFIG)) && kind get kubeconfig --name '$(KIND_CLUSTER)' > $(KIND_KUBECONFIG)
	@if [ '$(FLAVOUR)' = plugin ] && ! KUBECONFIG=$(KIND_KUBECONFIG) kubectl -n cnpg-system get deployment/barman-cloud >/dev/null 2>&1; then \
	  echo "drill-kind: FLAVOUR=plugin but the barman-cloud plugin is not installed; run make kind-up KIND_PLUGIN=1"; exit 3; \
	fi
	@echo "KUBECONFIG=$(KIND_KUBECONFIG) $(PGDRILL) run --backend kube --skip-unsupported --flavour $(FLAVOUR) --s3-endpoint $(KIND_S3_ENDPOINT) --cluster-s3-endpoint $(KIND_CLUSTER_S3_ENDPOINT) --s3-bucket $(KIND_S3_BUCKET) --report-dir reports $(KIND_SCENARIOS)"
	@KUBECONFIG=$(CURDIR)/$(KIND_KUBECONFIG) \
	AWS_ACCESS_KEY_ID='$(KIND_S3_ACCESS_KEY)' AWS_SECRET_ACCESS_KEY='$(KIND_S3_SECRET_KEY)' AWS_DEFAULT_REGION='$(KIND_S3_REGION)' \
	$(PGDRILL) run --backend kube --skip-unsupported --flavour $(FLAVOUR) \
	  --s3-endpoint $(KIND_S3_ENDPOINT) --cluster-s3-endpoint $(KIND_CLUSTER_S3_ENDPOINT) \
	  --s3-bucket $(KIND_S3_BUCKET) --report-dir reports $(KIND_SCENARIOS)

# ---- The live cluster: a one-node Kubernetes with the real CNPG operator, as host processes on
# this machine (cluster/, docs/kube-backend.md). Root only; no Docker. Versions in
# cluster/versions.env; builds cached under the pgdrill home, so a second cluster-up takes seconds.

# Debian packages the live cluster runs on; installed only when missing and only as root with apt.
cluster-deps:
	@need=""; \
	for c in containerd:containerd runc:runc iptables:iptables conntrack:conntrack debootstrap:debootstrap \
	         curl:curl openssl:openssl; do \
	  command -v $${c%%:*} >/dev/null 2>&1 || need="$$need $${c#*:}"; \
	done; \
	[ -x /usr/lib/cni/bridge ] || need="$$need containernetworking-plugins"; \
	command -v go >/dev/null 2>&1 || { echo "cluster-deps: go not found (Go 1.26 builds the cluster)"; exit 3; }; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$need"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need; \
	  else echo "missing:$$need (install them as root, then re-run)"; exit 3; fi; \
	fi

# Kubernetes, CNPG, the plugin, CoreDNS and the cluster tools from Go modules; the images.
cluster-build: cluster-deps
	@bash cluster/build.sh

cluster-up: build cluster-build
	@PGDRILL=$(CURDIR)/$(PGDRILL) CLUSTER_SKIP_BUILD=1 bash cluster/up.sh

cluster-down:
	@bash cluster/down.sh

cluster-status:
	@bash cluster/status.sh

# Every scenario the kube backend supports against the live cluster; reports in reports/latest/.
drill-cluster: setup cluster-up
	@bash cluster/drill.sh $(PGDRILL) --flavour $(FLAVOUR) --jobs $(JOBS) --report-dir reports $(KIND_SCENARIOS)
