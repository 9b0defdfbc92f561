# Aorta: HL7 v2 interface engine. `make help` lists the targets.

GO        ?= go
BIN       := bin
GOFLAGS   ?=
FUZZTIME  ?= 30s
GOBENCH   ?= .
# A count, not a duration: Go 1.26's fuzzer can fail a target with a bare
# "context deadline exceeded" when a duration ends while a worker is busy
# (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline to race.
FUZZCITIME ?= 200000x

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-13s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the binaries into bin/
	$(GO) build $(GOFLAGS) -o $(BIN)/ ./cmd/...

.PHONY: run
run: build ## Run the engine: MLLP listener on 127.0.0.1:2575 and router (PostgreSQL from DATABASE_URL, 127.0.0.1:5432 or a throwaway cluster)
	@./scripts/deps
	$(GO) run ./internal/devrun $(BIN) $(ARGS)

.PHONY: demo
demo: build ## Watch it work: the engine fed simulated patients (cmd/hl7sim), printing events, scores and alerts live; own database aorta_demo on run's server (DATABASE_URL's too), emptied at each start; ARGS go to hl7sim
	@./scripts/deps
	$(GO) run ./internal/devrun --demo $(BIN) $(ARGS)

.PHONY: test
test: ## Run every test (unit, corpus, fuzz seeds, integration against real PostgreSQL and TCP)
	@./scripts/deps --test
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

.PHONY: bench
bench: build ## Measure the engine (about 3 min): PostgreSQL's ceiling, the listener at 1-256 connections, memory, the router alone on a 20,000-message backlog and at 1,000 msg/s; Markdown + bin/bench.json; fresh database aorta_bench on run's server; ARGS go to hl7load bench
	@./scripts/deps
	$(BIN)/hl7load bench --bin $(BIN) $(ARGS)

.PHONY: bench-console
bench-console: build ## Time the API's and console's main views with 1,000,000 stored messages (about 2-6 min: seed by COPY, then 50 requests per view, alone and from 4 clients); Markdown + bin/consolebench.json; fresh database aorta_consolebench on run's server; ARGS go to hl7load consolebench (--reuse keeps the seed)
	@./scripts/deps
	$(BIN)/hl7load consolebench --bin $(BIN) $(ARGS)

.PHONY: gobench
gobench: ## Run the Go benchmarks (parser, ACK, framing, ingest, router); GOBENCH selects them (default .)
	$(GO) test -run '^$$' -bench '$(GOBENCH)' -benchmem ./...

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s) from its committed corpus; stops at the first failure
	@list=$$($(GO) test -list '^Fuzz' ./pkg/...) || { echo "$$list"; exit 1; }; \
	targets=$$(echo "$$list" | awk '/^Fuzz/ { fs = fs " " $$1 } /^ok/ { if (fs != "") print $$2 fs; fs = "" }'); \
	test -n "$$targets" || { echo 'fuzz: no fuzz targets found'; exit 1; }; \
	echo "$$targets" | while read pkg fs; do \
	  for f in $$fs; do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

.PHONY: fuzz-ci
fuzz-ci: ## Run every fuzz target briefly, as CI does after make test (FUZZCITIME each, default 200000 executions)
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZCITIME)

.PHONY: routes
routes: build ## Lint routes.yaml and run its route tests
	$(BIN)/router check routes.yaml
	$(BIN)/router test routes.test.yaml

.PHONY: lint
lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

.PHONY: migrate
migrate: build ## Apply database migrations to DATABASE_URL
	$(BIN)/mllp-listener migrate

.PHONY: clean
clean: ## Remove build output
	rm -rf $(BIN)
