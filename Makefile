# amrd: `make run` starts the service, `make test` runs every test (database ones included).
# Without DATABASE_URL both provision a local TimescaleDB themselves (deploy/tsdb.sh).

SHELL := /bin/bash
GO ?= go
BIN := bin/amrd
# Where the TimescaleDB root file system and `make run`'s secret key are kept (outside the
# repository, reused across runs).
AMRD_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/amrd
# Loopback port of `make run`'s local TimescaleDB.
PG_PORT ?= 55432
export AMRD_CACHE_DIR PG_PORT

.DEFAULT_GOAL := help
.PHONY: help build run db-start db-stop db-url test bench fmt vet clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/amrd
	$(GO) build -o $(BIN) ./cmd/amrd

run: build ## Start amrd (provisions and starts a local TimescaleDB when DATABASE_URL is unset)
	@bash deploy/run.sh $(BIN)

db-start: ## Start the local TimescaleDB of `make run` and print its DATABASE_URL
	@bash deploy/tsdb.sh start run $(PG_PORT)

db-url: ## Print the DATABASE_URL of `make run`'s local TimescaleDB
	@bash deploy/tsdb.sh url run

db-stop: ## Stop the local TimescaleDB that `make run` started
	@bash deploy/tsdb.sh stop run && echo "tsdb: stopped"

test: ## Run every test against a throw-away TimescaleDB (started and removed here)
	@bash deploy/test.sh

bench: build ## Ingestion (amrd vs raw COPY and the naive path, rollups on and off) and read benchmarks on a throw-away TimescaleDB (BENCHFLAGS="-only r1,r2" for some cases)
	@bash deploy/bench.sh $(BIN) $(BENCHFLAGS)

.PHONY: soak
soak: build ## Soak test: make run's stack under steady mixed traffic for 10 minutes (SOAK_MINUTES=N), then its checks
	@bash deploy/soak.sh $(BIN) -minutes $${SOAK_MINUTES:-10} $(SOAKFLAGS)

fmt: ## Format the Go code
	gofmt -w $$(git ls-files '*.go')

vet: ## Static checks
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

clean: ## Remove build output
	rm -rf bin
