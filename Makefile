# The two set-up commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every bundled plugin is its own distribution under plugins/<kind>/<name>/.
PLUGIN_DIRS := $(sort $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/*/pyproject.toml)))
STAMP := $(VENV)/.installed

.PHONY: demo test thorough mutation bench setup clean

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

clean:
	rm -rf $(VENV) examples/*/data examples/*/out examples/*/*.db*
