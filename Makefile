# Two commands for a newcomer: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: run test install node infra migrate openapi bench bench-audit bench-export bench-bulk clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# openapi-typescript and tsc for tests/test_generated_clients.py, exactly as package-lock.json pins them.
# No npm: say so and go on; that test then skips, or fails under CI.
$(NODE_STAMP): package-lock.json
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund --loglevel=error && touch $(NODE_STAMP); \
	else echo "npm is missing: the generated TypeScript client test will skip (and fail under CI)"; fi

node: $(NODE_STAMP)

# The real servers some tests and the bench start themselves on free loopback ports (nginx as the
# reverse proxy, PgBouncer in front of PostgreSQL), from Debian's packages: see .ci/install-infra.
infra:
	@bash .ci/install-infra

migrate: install
	$(BIN)/ipt db upgrade

run: migrate
	$(BIN)/ipt demo
	$(BIN)/ipt serve --host 127.0.0.1 --port 8000

# The whole suite: SQLite always, PostgreSQL when a server answers (IPT_TEST_POSTGRES_URL).
# Two workers: much of the suite waits on databases and on the servers it starts.
test: install node infra
	$(BIN)/python -m pytest -q -n 2 $(PYTEST_ARGS)

openapi: install
	$(BIN)/ipt openapi

bench: install
	$(BIN)/python bench/run.py

# Get a course and record a measure against the floor before and after 50,000,000 sealed audit events
# are added (about 40 minutes and 60 GB of disk here: bench/README.md); its own section of RESULTS.md.
bench-audit: install
	$(BIN)/python bench/run.py --only get_course,record_measure --big-list 0 --no-pgbouncer --no-processes \
		--audit-events $${AUDIT_EVENTS:-50000000}

bench-export: install
	$(BIN)/python bench/export_bench.py

# A FHIR Bulk Data $export of 1,000,000 measures against the research export of the same rows (bench/README.md).
bench-bulk: install
	$(BIN)/python bench/bulk_bench.py

clean:
	rm -rf $(VENV) node_modules *.egg-info .pytest_cache
