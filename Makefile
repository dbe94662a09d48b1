# Emostream: run it with `make demo`, test it with `make test`.
# Every target installs what it needs first (a virtualenv, Java, Maven, Redis).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help system-deps venv tools up down status logs demo listen test test-unit test-chart test-faults lint typecheck images cluster cluster-delete e2e bench-ingest bench-aggregate bench-latency bench-fanout bench-costs load clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

system-deps: ## install Java 17, Maven, Redis, nginx, wrk, shellcheck and headless Chromium from Debian packages if missing; check for node 20+
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing="$$missing fonts-noto-color-emoji"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing:$$missing (run: sudo apt-get install -y$$missing)"; exit 1; fi; \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# The TypeScript SDK's tests (clients/js) need node 20 or later (Debian's nodejs is older).
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null && command -v npm >/dev/null \
	  || { echo "node 20 or later, with npm, is needed for the TypeScript SDK's tests (clients/js); install it from nodejs.org or your distribution's backports"; exit 1; }

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,load,k8s]'
	touch $@

venv: $(STAMP) ## create .venv with the project and its tools

up: system-deps venv ## start Kafka, Redis, Spark, ingest (behind nginx) and fanout in the background
	$(BIN)/emostream stack up

down: venv ## stop everything `make up` started
	$(BIN)/emostream stack down

status: venv ## show each part of the local stack
	$(BIN)/emostream stack status

logs: venv ## follow the logs of every part
	$(BIN)/emostream stack logs --follow

RATE ?= 300
comma := ,
STREAMS ?= default
demo: up ## start the stack and the emoji generator; open the viewer URL
	@echo
	@echo "  Watch:  http://127.0.0.1:8080/watch/$(firstword $(subst $(comma), ,$(STREAMS)))"
	@echo "  Raw:    curl -N http://127.0.0.1:8080/v1/streams/default/events"
	@echo "  Generating $(RATE) reactions/s on '$(STREAMS)' (Ctrl-C stops the generator; make down stops the stack)"
	$(BIN)/emostream generate --rate $(RATE) --streams $(STREAMS)

listen: venv ## print the swarms of STREAM (default: default)
	$(BIN)/emostream listen $(or $(STREAM),default)

tools: ## build helm, kubeconform and promqlcheck at pinned versions into .emostream/bin/
	tools/install-tools.sh

# Every shell script: the *.sh files and the extension-less ones that start with a shell's #!.
SHELL_SCRIPTS = $(shell { git ls-files '*.sh'; git grep -lE '^\#!(/usr/bin/env |/bin/)(ba)?sh'; } | sort -u)
lint: system-deps venv ## ruff lint and format check, shellcheck on every shell script
	$(BIN)/ruff check src tests spark-jobs bench k8s-tests tools
	$(BIN)/ruff format --check src tests spark-jobs bench k8s-tests tools
	shellcheck --external-sources --source-path=SCRIPTDIR $(SHELL_SCRIPTS)

typecheck: venv ## mypy --strict on src/
	$(BIN)/mypy

test-unit: venv ## the pure unit tests only (no services)
	$(BIN)/pytest -m "not integration and not cluster"

test-chart: venv tools ## static Helm chart tests (no cluster, no network)
	$(BIN)/pytest -m chart k8s-tests/static

test: system-deps venv tools lint typecheck ## lint, type-check, then every test: real Kafka, Redis, Spark; chart
	$(BIN)/pytest -m "not cluster and not faults"

test-faults: system-deps venv ## kill and restart each part of a private stack under load: nothing lost, nothing counted twice
	$(BIN)/pytest -m faults tests/faults

BENCH_ARGS ?=
bench-ingest: system-deps venv ## ingest throughput vs. a bare Flask ceiling, against a local Kafka
	$(BIN)/python -m bench.ingest $(BENCH_ARGS)

bench-aggregate: system-deps venv ## aggregation throughput and event -> swarm latency vs. a plain consumer
	$(BIN)/python -m bench.aggregate $(BENCH_ARGS)

bench-latency: system-deps venv ## reaction -> viewer latency of the whole local stack, per stage, vs. a plain consumer
	$(BIN)/python -m bench.latency $(BENCH_ARGS)

bench-fanout: system-deps venv ## fanout SSE connections, deliveries/s and latency vs. a raw asyncio ceiling
	$(BIN)/python -m bench.fanout $(BENCH_ARGS)

bench-costs: system-deps venv ## Redis's and Kafka's CPU per operation as Emostream drives them (docs/capacity.md)
	$(BIN)/python -m bench.costs $(BENCH_ARGS)

USERS ?= 100
RUN_TIME ?= 2m
load: up ## Locust, headless, against the local stack for RUN_TIME with USERS; report and plots in reports/
	$(BIN)/python -m emostream.loadgen --users $(USERS) --run-time $(RUN_TIME) $(LOAD_ARGS)

cluster: ## build (once, offline) and start the kind cluster `emostream`: 3 nodes, NetworkPolicy engine, ReadWriteMany StorageClass `shared`, KEDA, monitoring stack
	k8s-tests/cluster/up.sh

cluster-delete: ## delete the kind cluster `emostream` (the built images and caches stay, outside the clone)
	k8s-tests/cluster/delete-cluster.sh

e2e: venv tools ## chart end-to-end tests on the cluster KUBECONFIG names (unset: build and use the kind cluster `emostream`), timed
	PYTEST=$(CURDIR)/$(BIN)/pytest k8s-tests/e2e/run.sh

ROLES ?=
images: ## build the container images offline (all roles, or ROLES="ingest fanout")
	images/build.sh $(ROLES)

clean: down ## stop the stack and delete its data (.emostream/) and the virtualenv
	rm -rf .emostream $(VENV)
