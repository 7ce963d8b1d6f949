# The two set-up commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every bundled plugin is its own distribution under plugins/<kind>/<name>/.
PLUGIN_DIRS := $(sort $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/*/pyproject.toml)))
STAMP := $(VENV)/.installed

.PHONY: demo test bench fuzz setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when any pyproject.toml changes.
$(STAMP): $(BIN)/python pyproject.toml $(addsuffix /pyproject.toml,$(PLUGIN_DIRS))
	$(BIN)/python -m pip install --quiet -e '.[test]' $(addprefix -e ,$(PLUGIN_DIRS))
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python examples/dealer_group/demo.py

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m benchmarks

# The property tests that `make test` runs with bounded examples, run long (minutes).
fuzz: setup
	DSL_FUZZ_EXAMPLES=5000 CONSENT_EXAMPLES=1000 $(BIN)/python -m pytest -q tests/test_dsl_fuzz.py tests/test_consent_opt_out.py

clean:
	rm -rf $(VENV) examples/*/data examples/*/out examples/*/*.db*
