"""A new target, a new model and a new metric, each one registry entry plus its test, in a
scratch copy of the repository, trained and evaluated through the real Snakemake CLI.

Nothing else is edited: the schema enums, the job priority, the display names, the tables
and the paired tests all follow the registries. The test checks that the scratch copy
differs from the repository in exactly those six files.
"""

from __future__ import annotations

import filecmp
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import WORKFLOW_PARTS, copy_workflow, snakemake
from study_fixture import write_study

# One registry entry each, appended to the module that holds the registry.
NEW_TARGET = """

TARGETS["human_yes_only"] = Target("soft_label_yes_only", distribution("soft_label_yes_only"), role="human", soft=True)
"""
NEW_MODEL = """

def tiny_ffn(hidden: int = 16, n_classes: int = 10):
    from torch import nn

    return nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


MODELS["tiny_ffn"] = Model("TinyFFN", tiny_ffn, priority=0)
"""
NEW_METRIC = '''

def _nll(q, ref, settings):
    """Negative log-likelihood of the reference class (a class the model cannot output: eps)."""
    q = clip_probs(q, settings["eps"])
    p = np.where(ref.labels < q.shape[1], q[np.arange(len(q)), np.minimum(ref.labels, q.shape[1] - 1)], settings["eps"])
    return float(np.mean(-np.log(p)))


METRICS["nll"] = Metric(_nll, higher_is_better=False, eval_sets=("orig", "human"), display="NLL")
'''
# Each entry's own test, a file of its own.
TESTS = {
    "tests/training/test_target_human_yes_only.py": """
import numpy as np
from study_fixture import write_study

from softdigits import study_table
from softdigits.training.targets import build_targets


def test_yes_only_target_is_the_yes_only_label_renormalised(tmp_path):
    write_study(tmp_path / "s.parquet")
    study = study_table.read_study(tmp_path / "s.parquet")
    built = build_targets(study, "human_yes_only", "renormalise")
    soft = study.vectors["soft_label_yes_only"][:, :10]
    rows = built.usable
    assert rows.sum() > 200
    assert np.allclose(built.values[rows], soft[rows] / soft[rows].sum(axis=1, keepdims=True))
""",
    "tests/training/test_model_tiny_ffn.py": """
import torch

from softdigits.training.models import build_model, n_parameters


def test_tiny_ffn_shape_and_size():
    model = build_model("tiny_ffn", seed=0)
    assert model(torch.zeros(3, 784)).shape == (3, 10)
    assert n_parameters(model) == 784 * 16 + 16 + 16 * 10 + 10
""",
    "tests/evaluation/test_metric_nll.py": """
import numpy as np

from softdigits.evaluation.metrics import METRICS, Reference


def test_nll_of_a_certain_right_answer_is_zero_and_grows_when_wrong():
    nll = METRICS["nll"].score
    q = np.eye(10)[[3, 4]]
    assert nll(q, Reference(np.array([3, 4]), None), {"eps": 1e-8}) < 1e-6
    assert nll(q, Reference(np.array([4, 3]), None), {"eps": 1e-8}) > 10
""",
}
OVERLAY = {
    "study": {"corpora": ["mnist"]},
    "training": {
        "models": ["simple_ffn", "tiny_ffn"],
        "targets": ["human_majority", "human_uncertainty", "human_yes_only"],
        "seeds": [0, 1],
    },
    "evaluation": {"comparisons": [["human_yes_only", "human_majority"]], "control_comparisons": []},
}
RULES = ["train_run", "evaluate_runs", "evaluate_dynamics", "evaluate_summary", "table_results"]


def changed_files(repo, copy) -> set[str]:
    """Files of the workflow parts that differ between two trees (new files included)."""
    changed = set()

    def walk(cmp, prefix):
        changed.update(f"{prefix}{name}" for name in cmp.diff_files + cmp.right_only)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    for part in [*WORKFLOW_PARTS, "tests"]:
        if (repo / part).is_dir():
            walk(filecmp.dircmp(repo / part, copy / part, ignore=["__pycache__"]), f"{part}/")
    return changed


@pytest.mark.workflow
def test_a_target_a_model_and_a_metric_are_one_entry_each(tmp_path):
    from conftest import REPO

    work = copy_workflow(tmp_path / "workflow")
    (work / "tests").mkdir()
    for path, addition in [
        ("softdigits/training/targets.py", NEW_TARGET),
        ("softdigits/training/models.py", NEW_MODEL),
        ("softdigits/evaluation/metrics.py", NEW_METRIC),
    ]:
        with open(work / path, "a") as f:
            f.write(addition)
    for path, text in TESTS.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text.lstrip())
    assert changed_files(REPO, work) == {
        "softdigits/training/targets.py",
        "softdigits/training/models.py",
        "softdigits/evaluation/metrics.py",
        *TESTS,
    }

    # each entry's own test passes in the scratch copy
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(work), *TESTS],
        cwd=work,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{work}:{REPO / 'tests'}", "PATH": "/usr/bin:/bin"},
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]

    # the tiny config trains and evaluates them, on a study table made here
    overlay = yaml.safe_load((work / "config/test.yaml").read_text())
    for key, value in OVERLAY.items():
        overlay[key] = {**(overlay.get(key) or {}), **value}
    (work / "config/test.yaml").write_text(yaml.safe_dump(overlay))
    write_study(work / "results-test/study/mnist.parquet", sizes={"train": 120, "val": 40, "test": 40})
    targets = [f"results-test/tables/{t}.csv" for t in ("table2", "table3", "paired_tests")]
    snakemake(work, "--cores", "2", "--allowed-rules", *RULES, "--", *targets)

    table2 = pd.read_csv(work / "results-test/tables/table2.csv")
    assert "human_yes_only" in set(table2["target"])
    assert {"TinyFFN · HLV", "SimpleFFN · HLV"} <= set(table2.columns)
    summary = pd.read_parquet(work / "results-test/evaluation/summary.parquet")
    nll = summary[summary["metric"] == "nll"]
    assert set(nll["eval_set"]) == {"orig", "human"} and set(nll["model"]) == {"simple_ffn", "tiny_ffn"}
    assert (nll["mean"] > 0).all()
    tests = pd.read_parquet(work / "results-test/evaluation/paired_tests.parquet")
    pair = tests[(tests["metric"] == "nll") & (tests["treatment"] == "human_yes_only")]
    assert len(pair) and pair["improved"].notna().all()  # the registry gives the new metric its direction
