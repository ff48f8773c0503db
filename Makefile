# coursedrop — every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Local defaults; anything set in the environment wins.
export DATABASE_URL ?= mysql://root@127.0.0.1:3306/coursedrop
export AWS_ENDPOINT_URL ?= http://127.0.0.1:4566
# SQS from fauxqs (devtools/services), S3 and Secrets Manager from moto: the AWS SDK reads
# the service's own endpoint variable before AWS_ENDPOINT_URL.
export AWS_ENDPOINT_URL_SQS ?= http://127.0.0.1:4576
export AWS_REGION ?= ap-southeast-1
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export SMTP_URL ?= smtp://127.0.0.1:1025
export MAILDIR ?= $(CURDIR)/.local/mail
# The SMTP sink may be another checkout's (devtools/services reuses it): what reads mail (the
# tests, the demo one of them runs, make demo, make chaos) is told where that sink writes.
SINK_MAILDIR = MAILDIR="$$(devtools/services maildir)"
export RUST_LOG ?= info
# Local-only key for the webhook; production sets its own (the webhook refuses all without one).
export SEPAY_API_KEY ?= local-dev-key
# moto's buckets are not DNS names.
export S3_FORCE_PATH_STYLE ?= true

CARGO ?= cargo

.PHONY: help services services-down services-status migrate test demo dev bench fmt lint check admin \
	build-lambdas package-job deploy db-users lint-infra fuzz chaos bench-console deny audit test-docker test-docker-down

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

services: ## start MariaDB, moto and the SMTP sink (installs what is missing; idempotent)
	@devtools/services up

services-down: ## stop what `make services` started
	@devtools/services down

services-status: ## show which local services answer
	@devtools/services status

migrate: services ## apply database migrations to $DATABASE_URL
	$(CARGO) run --quiet -p coursedrop-dev -- migrate

test: services deny ## start services, check dependencies (make deny), then run every test in the workspace
	$(SINK_MAILDIR) $(CARGO) test --workspace --locked --no-fail-fast

demo: services ## the whole flow locally (order, payment, enrollment, delivery, email), on real local services
	$(SINK_MAILDIR) $(CARGO) run --quiet -p coursedrop-dev -- demo

dev: services ## the whole stack left running: API on :3000 (PORT), functions, deliver job, Drive emulator on :4567
	$(CARGO) run --quiet -p coursedrop-dev -- serve

admin: ## the operator CLI against the configured database, e.g. make admin ARGS="orders --status paid"
	@$(CARGO) run --quiet -p coursedrop-admin -- $(ARGS)

bench: services ## benchmarks (release build); writes bench/latest.json and bench/latest.md
	$(CARGO) build --quiet --release --locked $(addprefix -p ,$(FUNCTIONS))
	@# The webhook beside the system it replaces and the database's own limit, with wrk.
	devtools/bench-webhook | tee bench/webhook.md
	$(CARGO) run --quiet --release -p coursedrop-dev -- bench

FUZZ_TARGETS := sepay_payload order_code vietqr
FUZZ_SECONDS ?= 600
fuzz: ## run each fuzz target (devtools/fuzz) for FUZZ_SECONDS (600); any crash fails and leaves its input in devtools/fuzz/artifacts/
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	@# cargo-fuzz passes -Z flags; RUSTC_BOOTSTRAP lets the machine's stable toolchain take them.
	@mkdir -p target && for t in $(FUZZ_TARGETS); do \
	  log=target/fuzz-$$t.log; echo "fuzz: $$t for $(FUZZ_SECONDS) s (log: $$log)"; \
	  if ! RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir devtools/fuzz $$t -- \
	      -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 >$$log 2>&1; then tail -n 40 $$log; exit 1; fi; \
	  grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' $$log; \
	done

bench-console: services ## the console's orders list and searches at 100,000 orders (release build); writes bench/console.md
	$(CARGO) run --quiet --release -p coursedrop-dev -- bench-console

chaos: services ## 50 orders while the job is killed, moto and MariaDB restart, Drive fails 10 % and webhooks are dropped for a stretch (release build; exit 1 on any violation)
	$(CARGO) build --quiet --release --locked -p deliver
	$(SINK_MAILDIR) $(CARGO) run --quiet --release -p coursedrop-dev -- chaos

fmt: ## format the code
	$(CARGO) fmt --all

lint: ## clippy on everything, warnings are errors; formatting checked; SQL only in shared/src/store/
	$(CARGO) fmt --all -- --check
	@if grep -rn --include=*.rs 'sqlx::query' shared/src functions/*/src jobs/*/src devtools/admin/src \
	    | grep -v '^shared/src/store/\|^shared/src/testing.rs'; then \
	  echo "lint: SQL outside shared/src/store/ (above)"; exit 1; fi
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

check: lint test ## what CI runs

# ------------------------------------------------------------------ dependencies (deny.toml)
# Pinned: a newer cargo-deny may need a newer Rust than rust-toolchain.toml's. Builds in about
# 2.5 minutes on two cores, once per machine.
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := command -v cargo-deny >/dev/null || $(CARGO) install --locked cargo-deny@$(CARGO_DENY_VERSION)

deny: ## licenses, banned crates (OpenSSL, native-tls, aws-lc) and sources (crates.io only), per deny.toml; offline
	@$(CARGO_DENY)
	$(CARGO) deny --locked check --hide-inclusion-graph licenses bans sources

audit: ## RustSec advisories (cargo deny check advisories): fetches the advisory database from GitHub
	@$(CARGO_DENY)
	$(CARGO) deny --locked check advisories

# ------------------------------------------------------------------ Docker (docs/development-docker.md)
# The same tests against MariaDB, LocalStack and an SMTP sink in containers (docker-compose.yml),
# on ports of their own, so they run beside `make services`.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)
DOCKER_DB_PORT ?= 13306
DOCKER_AWS_PORT ?= 14566
DOCKER_SMTP_PORT ?= 11025
DOCKER_MAILDIR ?= $(CURDIR)/.local/docker-mail
COMPOSE_ENV = DOCKER_DB_PORT=$(DOCKER_DB_PORT) DOCKER_AWS_PORT=$(DOCKER_AWS_PORT) \
	DOCKER_SMTP_PORT=$(DOCKER_SMTP_PORT) DOCKER_MAILDIR=$(DOCKER_MAILDIR)

test-docker: ## every test against the services in docker-compose.yml (not the local ones); leaves them running
	@docker info >/dev/null 2>&1 || { echo "test-docker: no Docker engine answers (docker info)"; exit 1; }
	@# Made here, not by the container, so the Maildir's folders are yours and readable.
	@mkdir -p $(DOCKER_MAILDIR)/cur $(DOCKER_MAILDIR)/new $(DOCKER_MAILDIR)/tmp
	$(COMPOSE_ENV) $(COMPOSE) up --detach --wait --wait-timeout 300
	DATABASE_URL=mysql://root@127.0.0.1:$(DOCKER_DB_PORT)/coursedrop \
	AWS_ENDPOINT_URL=http://127.0.0.1:$(DOCKER_AWS_PORT) AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$(DOCKER_AWS_PORT) \
	SMTP_URL=smtp://127.0.0.1:$(DOCKER_SMTP_PORT) MAILDIR=$(DOCKER_MAILDIR) \
	  $(CARGO) test --workspace --locked --no-fail-fast

test-docker-down: ## stop and remove the containers of make test-docker
	$(COMPOSE_ENV) $(COMPOSE) down --volumes --remove-orphans

# ------------------------------------------------------------------ deployment (README: Deploying)
FUNCTIONS := create-order self-service bank-webhook enroll finalize sweeper reconcile console
STAGE ?= prod
STACK ?= coursedrop-$(STAGE)
# Non-secret stack parameters, one Key=Value per line (infra/params.example.env shows them).
DEPLOY_PARAMS ?= infra/params.$(STAGE).env
GIT_SHA := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo dev)
# The ECR repository the job's image is pushed to, e.g. 123456789012.dkr.ecr.ap-southeast-1.amazonaws.com/coursedrop-deliver
DELIVER_REPO ?=

lint-infra: ## cfn-lint on infra/template.yaml, then the template's own rules (infra/check_template.py)
	@bin=$$(devtools/services tool cfn-lint) && $$bin/cfn-lint infra/template.yaml && $$bin/python infra/check_template.py infra/template.yaml

build-lambdas: ## the eight functions for Lambda (cargo lambda build --release --arm64), zipped in target/lambda/<name>/
	@bin=$$(devtools/services tool cargo-lambda) && PATH="$$bin:$$PATH" \
	  cargo lambda build --release --arm64 --output-format zip $(addprefix -p ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do \
	  printf '  %-14s %6d KiB zipped\n' $$f $$(( $$(stat -c %s target/lambda/$$f/bootstrap.zip) / 1024 )); done

package-job: ## the deliver job's image for Fargate arm64 (docker buildx), tagged with the git commit
	docker buildx build --platform linux/arm64 -f infra/Dockerfile --load -t coursedrop-deliver:$(GIT_SHA) .

db-users: ## each function's own database user with only its grants (infra/db-users; after make migrate and make deploy)
	STACK=$(STACK) infra/db-users

deploy: lint-infra ## push the job's image and deploy the stack with SAM (infra/deploy; README: Deploying)
	STAGE=$(STAGE) STACK=$(STACK) DEPLOY_PARAMS=$(DEPLOY_PARAMS) DELIVER_REPO=$(DELIVER_REPO) infra/deploy
