# pgdrill: every target a user or CI needs. `make test` is what CI runs (.ci/run).
CARGO   ?= cargo
PGDRILL := target/debug/pgdrill
JOBS    ?= 2

.PHONY: all build setup system-deps drill test bench fmt lint kind-up kind-down drill-kind

all: build

build:
	$(CARGO) build --locked

# OS packages the toolchain needs; installed only when missing and only as root with apt.
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
	fi

# barman-cloud in a venv, PostgreSQL binaries for every major the scenarios use, the OS user.
setup: system-deps build
	$(PGDRILL) setup

# Run every scenario in scenarios/ for real; reports in reports/latest/.
drill: setup
	$(PGDRILL) run --jobs $(JOBS) scenarios

test: setup
	$(CARGO) test --locked --all-targets

bench: setup
	@echo "bench: not yet implemented (measures drill phases and memory; see issues)"; exit 1

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

kind-up kind-down drill-kind:
	@echo "$@: the Kubernetes backend is not built yet (issue 3)"; exit 2
