# The two set-up commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every bundled plugin is its own distribution under plugins/<kind>/<name>/.
PLUGIN_DIRS := $(sort $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/*/pyproject.toml)))
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PG_STAMP := $(VENV)/.installed-postgres

.PHONY: demo console test thorough mutation bench fuzz setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when any pyproject.toml changes. The demo needs the core, the bundled plugins and its SMTP receiver;
# the test extra (pytest, hypothesis, aiosmtpd, lifetimes with pandas/scipy) is installed for `make test`.
$(STAMP): $(BIN)/python pyproject.toml $(addsuffix /pyproject.toml,$(PLUGIN_DIRS))
	$(BIN)/python -m pip install --quiet -e '.[demo]' $(addprefix -e ,$(PLUGIN_DIRS))
	touch $(STAMP)

$(PG_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[postgres]'
	touch $(PG_STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

setup: $(TEST_STAMP)

# `make demo DATABASE=postgresql://user@host/db` runs it on PostgreSQL (docs/stores.md; the same as exporting
# MOTORCADE_DATABASE): the demo empties that database's Motorcade store first, so give it one of its own.
demo: $(STAMP) $(if $(DATABASE)$(MOTORCADE_DATABASE),$(PG_STAMP))
	$(if $(DATABASE),MOTORCADE_DATABASE='$(DATABASE)' )$(BIN)/python examples/dealer_group/demo.py

# The web console on the demo's data (runs the demo first when its SQLite file is missing; on PostgreSQL,
# DATABASE=... as for the demo, run `make demo DATABASE=...` first); docs/console.md.
console: $(STAMP)
	test -n "$(DATABASE)$(MOTORCADE_DATABASE)" || test -f examples/dealer_group/motorcade.db || \
		$(BIN)/python examples/dealer_group/demo.py
	$(if $(DATABASE),MOTORCADE_DATABASE='$(DATABASE)' )$(BIN)/motorcade --project examples/dealer_group console

test: setup
	$(BIN)/python -m pytest -q

# Every property test with ten times its examples (tests/conftest.py, profile `thorough`): before a release.
thorough: setup
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest -q -p no:randomly

# Mutation testing with cosmic-ray (long: not in CI). MODULES= limits it, e.g. MODULES=dsl/format.py;
# report in build/mutation/report.md, survivors explained in tests/MUTANTS.md.
mutation: setup
	$(BIN)/python -m pip install --quiet -e '.[mutation]'
	$(BIN)/python tests/mutation/run.py $(MODULES)

bench: setup
	$(BIN)/python -m benchmarks

# The property tests that `make test` runs with bounded examples, run long (minutes).
fuzz: setup
	DSL_FUZZ_EXAMPLES=5000 CONSENT_EXAMPLES=1000 INGEST_FUZZ_EXAMPLES=500 $(BIN)/python -m pytest -q tests/test_dsl_fuzz.py \
		tests/test_consent_opt_out.py tests/test_ingest_fuzz.py

clean:
	rm -rf $(VENV) examples/*/data examples/*/out examples/*/*.db*
