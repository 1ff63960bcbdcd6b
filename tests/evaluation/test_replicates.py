"""Whole-study replicates: every seed shifted per replicate, one DAG of modules, and the summary."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import REPO, dry_run_jobs

from softdigits.config import REPLICATE_SEED_KEYS, REPLICATE_STRIDE, replicate_config
from softdigits.evaluation.replicates import write_summary


def default_config():
    return yaml.safe_load((REPO / "workflow_config.yaml").read_text())


def test_a_replicate_shifts_every_seed_and_writes_to_its_own_folder():
    config = default_config()
    zero, two = replicate_config(config, 0), replicate_config(config, 2)
    assert zero["results"] == "results/replicate0" and two["results"] == "results/replicate2"
    assert zero["replicates"] == two["replicates"] == []
    for section, key in REPLICATE_SEED_KEYS:
        assert zero[section][key] == config[section][key]  # replicate 0 is the study itself
        shifted = two[section][key]
        original = config[section][key]
        if isinstance(original, list):
            assert shifted == [s + 2 * REPLICATE_STRIDE for s in original]
        else:
            assert shifted == original + 2 * REPLICATE_STRIDE
    assert config["results"] == "results"  # the caller's config is left alone


def test_every_seed_of_the_config_is_a_replicate_seed():
    """A seed key added to the config but not to REPLICATE_SEED_KEYS would be the same in every
    replicate: every key named seed/seeds in the default config must be listed."""

    def seed_keys(node, path=()):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from seed_keys(value, path + (key,))
            elif key in ("seed", "seeds", "shuffle_seed", "permutation_seed", "bootstrap_seed"):
                yield path + (key,)

    assert {k for k in seed_keys(default_config()) if len(k) == 2} == set(REPLICATE_SEED_KEYS)


def fake_run(folder, *, verdict, holds, dup):
    folder.mkdir(parents=True)
    headline = {
        "duplicates": [{"corpus": "mukhoti", "n_images": 600, "n_removed": dup, "share_removed": dup / 600}],
        "table1": [
            {
                "corpus": "mnist",
                "hlv_pct": 40.0 + dup / 100,
                "orig_label_agreement_pct": 97.0,
                "nan_pct": 0.5,
                "u_mean": 0.02,
                "u_prop": 0.14,
            }
        ],  # fmt: skip
        "table9": [],
        "crossover": [],
        "verdicts": [],
    }
    condition = {"cell": {"corpus": "mnist", "model": "lenet"}, "statement": "lower", "outcome": holds}
    findings = {"findings": [{"claim": "Soft labels lower KL", "verdict": verdict, "conditions": [condition]}]}
    (folder / "headline.json").write_text(json.dumps(headline))
    (folder / "findings.json").write_text(json.dumps(findings))
    return folder


def test_the_summary_counts_conditions_and_spreads_numbers(tmp_path):
    folders = {
        0: fake_run(tmp_path / "r0", verdict="supported", holds="holds", dup=100),
        1: fake_run(tmp_path / "r1", verdict="inconclusive", holds="inconclusive", dup=120),
        2: fake_run(tmp_path / "r2", verdict="supported", holds="holds", dup=110),
    }
    summary = write_summary(folders, tmp_path / "s.md", tmp_path / "s.json", labels="Human labels: SIMULATED.")
    cond = summary["conditions"].iloc[0]
    assert (cond["holds"], cond["inconclusive"], cond["fails"], cond["of"]) == (2, 1, 0, 3)
    verdicts = summary["verdicts"].iloc[0]
    assert [verdicts[f"replicate {r}"] for r in range(3)] == ["supported", "inconclusive", "supported"]
    numbers = summary["numbers"].set_index(["section", "number"])
    removed = numbers.loc[("duplicates", "n_removed")]
    assert (removed["min"], removed["max"], removed["mean"]) == (100, 120, 110)
    assert removed["sd"] == pytest.approx(10.0)
    text = (tmp_path / "s.md").read_text()
    assert "0 of 1 conditions hold in every replicate" in text and "SIMULATED" in text
    assert json.loads((tmp_path / "s.json").read_text())["numbers"]


@pytest.mark.workflow
def test_replicates_are_one_dag_of_modules_each_with_its_own_seeds(workflow_copy):
    overlay = workflow_copy / "config/replicates_test.yaml"
    overlay.write_text("replicates: [0, 1]\n")
    jobs = dry_run_jobs(workflow_copy, "--configfile", "config/test.yaml", "config/replicates_test.yaml")
    assert jobs["replicates_summary"] == 1
    assert jobs["replicate0_train_run"] == jobs["replicate1_train_run"] > 0
    assert "train_run" not in jobs and "replicate1_download_file" not in jobs
    from conftest import snakemake

    listed = snakemake(
        workflow_copy,
        "--configfile",
        "config/test.yaml",
        "config/replicates_test.yaml",
        "-n",
        "--",
        "results-test/replicates.md",
    ).stdout
    assert "results-test/replicate0/training/mnist/lenet/original/seed0/" in listed
    assert "results-test/replicate1/training/mnist/lenet/original/seed1000/" in listed
    assert "results-test/replicate1/training/mnist/lenet/original/seed0/" not in listed
