"""Every config builds its whole DAG; the DAG can be drawn without graphviz."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import copy_workflow

CONFIGS = {
    "default": [],
    "test": ["--configfile", "config/test.yaml"],
    "paper": ["--configfile", "config/paper.yaml"],
}


def snakemake_dry(workdir, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


@pytest.mark.workflow
@pytest.mark.parametrize("name", CONFIGS)
def test_dry_run_lists_every_stage(name, tmp_path):
    # A dry run in a fresh copy (no results yet): every stage's jobs are listed.
    out = snakemake_dry(copy_workflow(tmp_path), *CONFIGS[name], "-n", "--quiet", "rules")
    counts = {
        line.split()[0]: int(line.split()[1])
        for line in out.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    }
    jobs = set(counts)
    expected = {
        "corpus",
        "dedup",
        "cartography_train",
        "selection_solve",
        "corpus_size_run",
        "study_table",
        "train_run",
        "evaluate_runs",
        "table_results",
        "findings",
    }
    assert expected <= jobs, expected - jobs
    if name == "paper":
        assert "download_file" in jobs and counts["corpus"] == 4  # mnist, mukhoti, ardis, weiss
        assert "annotation_simulate" not in jobs  # the released human labels
    else:
        assert {"generator_pool", "annotation_simulate", "aggregate_labels"} <= jobs


@pytest.mark.workflow
def test_dag_as_mermaid_needs_no_graphviz(tmp_path):
    out = snakemake_dry(copy_workflow(tmp_path), "--configfile", "config/test.yaml", "--dag", "mermaid-js")
    assert "flowchart" in out and "train_run" in out
