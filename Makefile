# coursedrop — every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Local defaults; anything set in the environment wins.
export DATABASE_URL ?= mysql://root@127.0.0.1:3306/coursedrop
export AWS_ENDPOINT_URL ?= http://127.0.0.1:4566
export AWS_REGION ?= ap-southeast-1
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export SMTP_URL ?= smtp://127.0.0.1:1025
export MAILDIR ?= $(CURDIR)/.local/mail
export RUST_LOG ?= info
# Local-only key for the webhook; production sets its own (the webhook refuses all without one).
export SEPAY_API_KEY ?= local-dev-key
# moto's buckets are not DNS names.
export S3_FORCE_PATH_STYLE ?= true

CARGO ?= cargo

.PHONY: help services services-down services-status migrate test demo dev bench fmt lint check admin

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

test: services ## start services, then run every test in the workspace
	$(CARGO) test --workspace --locked --no-fail-fast

demo: services ## the whole flow locally (order, payment, enrollment, delivery, email), on real local services
	$(CARGO) run --quiet -p coursedrop-dev -- demo

dev: services ## the whole stack left running: API on :3000 (PORT), functions, deliver job, Drive emulator on :4567
	$(CARGO) run --quiet -p coursedrop-dev -- serve

admin: ## the operator CLI against the configured database, e.g. make admin ARGS="orders --status paid"
	@$(CARGO) run --quiet -p coursedrop-admin -- $(ARGS)

bench: services ## benchmarks (release build); writes bench/latest.json and bench/latest.md
	$(CARGO) run --quiet --release -p coursedrop-dev -- bench

fmt: ## format the code
	$(CARGO) fmt --all

lint: ## clippy on everything, warnings are errors; formatting checked
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

check: lint test ## what CI runs
