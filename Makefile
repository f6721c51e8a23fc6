# Each command does all set-up on a fresh machine with only Python 3.11+:
#   make lab    create .venv, install, open JupyterLab on notebooks/ (sandbox by default)
#   make test   create .venv, install, run the whole suite (ruff, import contracts, mypy, pytest, nbval)
#   make quick  the same without the tests marked slow and the notebooks: the fast loop
#   make console  the console as a web page with no code (Voila on 127.0.0.1), against the sandbox
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test quick venv lint bench clean console

# (Re)build the venv when it is missing, broken (e.g. Python moved) or older than pyproject.toml.
$(STAMP): pyproject.toml
	@if ! $(BIN)/python -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then \
		echo "creating $(VENV)"; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lab]'
	@touch $(STAMP)

venv: $(STAMP)

# The static checks: ruff, the import contracts and the type checker (configs in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n 2 -p no:randomly
	ROMAKIT_HOME=$(CURDIR)/.romakit-test $(BIN)/python -m pytest --nbval --nbval-sanitize-with notebooks/sanitize.cfg notebooks -p no:randomly -q

quick: lint
	$(BIN)/python -m pytest -n 2 -p no:randomly -m "not slow"

# JupyterLab's defaults for this venv: no autosave, so running a walkthrough does not rewrite
# the stored notebooks (their outputs are checked by nbval); save on purpose with Ctrl-S.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
$(LAB_OVERRIDES): $(STAMP)
	@mkdir -p $(dir $@)
	@echo '{"@jupyterlab/docmanager-extension:plugin": {"autosave": false}}' > $@

# JupyterLab refuses to run as root unless told; containers and CI machines often are root.
lab: $(STAMP) $(LAB_OVERRIDES)
	$(BIN)/jupyter lab --notebook-dir=notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# The console (rk.console) as a page without code cells, served by Voila on 127.0.0.1 with a random
# token, against the sandbox; it prints the address to open. Ctrl-C stops it.
console: $(STAMP)
	$(BIN)/romakit console

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_force_offline.py
	$(BIN)/python benchmarks/bench_mqtt_delete.py
	$(BIN)/python benchmarks/bench_results.py
	$(BIN)/python benchmarks/bench_journal.py
	$(BIN)/python benchmarks/bench_listing.py
	$(BIN)/python benchmarks/bench_rate_limit.py
	$(BIN)/python benchmarks/bench_sandbox.py
	$(BIN)/python benchmarks/bench_fanout.py
	$(BIN)/python benchmarks/bench_picker.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build *.egg-info
