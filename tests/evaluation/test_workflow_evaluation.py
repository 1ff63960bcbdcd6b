"""The evaluation stage through the Snakemake CLI.

`test_evaluation_stage_on_fabricated_runs` feeds the stage study tables and
training outputs made here (so it runs whatever the upstream stages do) and
builds the HTML report; `test_tiny_run_produces_every_table_and_figure` checks
the real tiny-config workflow end to end.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from conftest import dry_run_jobs, snakemake

from softdigits.io import vectors_column, write_json, write_table

# the controls are in the fabricated grid, so the whole post-hoc path runs
GRID = {
    "models": ["simple_ffn", "lenet"],
    "targets": ["original", "human_majority", "human_equal", "human_uncertainty", "label_smoothing", "human_shuffled"],
    "seeds": [0, 1, 2],
    "not_a_digit": "renormalise",
}
EVAL_RULES = [
    "evaluate_runs",
    "evaluate_dynamics",
    "evaluate_summary",
    "table_results",
    "plot_data_maps",
    "plot_jsd",
    "plot_reliability",
    "plot_risk_coverage",
    "plot_corpus_size",
    "findings",
]
TABLES = [
    "table2",
    "table3",
    "table4",
    "table9",
    "table10",
    "table_ece",
    "paired_tests",
    "table9_vs_paper",
    "table4_vs_paper",
    "table_controls",
    "table_temperature",
    "table_selective",
]


def study_table(corpus: str, rng, n: int = 60) -> pd.DataFrame:
    split = np.array(["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4))
    label = rng.integers(0, 10, n)
    if corpus == "mukhoti":
        label_dist = rng.dirichlet(np.ones(10) * 0.3, n)
        label = label_dist.argmax(axis=1)
    else:
        label_dist = np.eye(10)[label]
    soft = np.zeros((n, 11))
    soft[np.arange(n), label] = 1.0
    hlv = rng.random(n) < 0.5
    other = (label + 1 + rng.integers(0, 9, n)) % 10
    soft[hlv, label[hlv]] = 0.6
    soft[hlv, other[hlv]] = 0.4
    soft[0] = 0.0
    soft[0, 10] = 1.0  # one pure not-a-digit image
    hlv[0] = False
    return pd.DataFrame(
        {
            "image_id": [f"{corpus}:x:{i}" for i in range(n)],
            "source": corpus,
            "split": split,
            "label": label,
            "label_dist": list(label_dist.astype(np.float32)),
            "soft_label": list(soft.astype(np.float32)),
            "soft_label_yes_unc_equal": list(soft.astype(np.float32)),
            "soft_label_yes_only": list(soft.astype(np.float32)),
            "soft_label_argmax": soft.argmax(axis=1),
            "human_uncert_mean": np.where(hlv, rng.uniform(0.05, 0.3, n), 0.0),
            "pct_ann_unsure": np.where(hlv, rng.choice([1 / 6, 1 / 3, 1 / 2], n), 0.0),
            "n_annotators": 6,
            "hlv": hlv,
            "simulated": True,
            "pixels": list(rng.integers(0, 256, (n, 784), dtype=np.uint8)),
        }
    )


def fake_probs(reference: np.ndarray, rng, sharpness: float) -> np.ndarray:
    logits = sharpness * np.log(np.clip(reference, 1e-3, None)) + rng.normal(0, 0.5, reference.shape)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def fabricate(workdir, corpora=("mnist", "mukhoti")) -> None:
    """Study tables and training outputs in the contracts of docs/DEVELOPING.md."""
    rng = np.random.default_rng(0)
    for corpus in corpora:
        study = study_table(corpus, rng)
        write_table(study, workdir / f"results-test/study/{corpus}.parquet", metadata={"labels_origin": "simulated"})
        soft = np.stack(study["soft_label"])[:, :10] + 1e-3
        majority = np.eye(10)[study["soft_label"].map(np.argmax).clip(0, 9)]
        references = {
            "original": np.stack(study["label_dist"]),
            "human_majority": majority,
            "human_equal": soft,
            "human_uncertainty": soft,
            # the controls: uniform softness on the majority; soft labels of other images
            "label_smoothing": 0.8 * majority + 0.02,
            "human_shuffled": np.roll(soft, 1, axis=0),
        }
        evaluated = study["split"].isin(["val", "test"]).to_numpy()
        train = (study["split"] == "train").to_numpy()
        for model, target, seed in itertools.product(GRID["models"], GRID["targets"], GRID["seeds"]):
            run = workdir / f"results-test/training/{corpus}/{model}/{target}/seed{seed}"
            ref = references[target]
            write_table(
                pa.table(
                    {
                        "image_id": study.loc[evaluated, "image_id"].to_numpy(),
                        "split": study.loc[evaluated, "split"].to_numpy(),
                        "probs": vectors_column(fake_probs(ref[evaluated], rng, 1.0)),
                    }
                ),
                run / "test_performance_predictions.parquet",
            )
            epochs = np.arange(1, 8)
            probs = np.concatenate([fake_probs(ref[train], rng, e / 7) for e in epochs])
            write_table(
                pa.table(
                    {
                        "epoch": np.repeat(epochs, train.sum()),
                        "image_id": np.tile(study.loc[train, "image_id"].to_numpy(), len(epochs)),
                        "probs": vectors_column(probs),
                    }
                ),
                run / "dynamics_predictions.parquet",
            )
            history = pd.DataFrame(
                {"epoch": epochs, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5, "lr": 1e-3}
            )
            write_table(history, run / "test_performance_history.parquet")
            write_table(history, run / "dynamics_history.parquet")
            write_json({"seed": seed}, run / "manifest.json")
    runs = pd.DataFrame(
        [
            {"samples_per_digit": n, "repetition": r, "test_accuracy": 0.9 + 0.01 * np.log(n / 50) + 0.002 * r}
            for n in (50, 100, 150)
            for r in range(3)
        ]
    )
    write_table(runs, workdir / "results-test/corpus_size/runs.parquet")


def with_fabricated_grid(workdir) -> None:
    """Make the test config's training grid the one `fabricate` writes runs for."""
    overlay_path = workdir / "config/test.yaml"
    overlay = yaml.safe_load(overlay_path.read_text())
    overlay["training"] = {**(overlay.get("training") or {}), **GRID}
    overlay_path.write_text(yaml.safe_dump(overlay))


@pytest.mark.workflow
def test_evaluation_stage_on_fabricated_runs(workflow_copy):
    with_fabricated_grid(workflow_copy)
    fabricate(workflow_copy)
    targets = (
        ["results-test/findings.md", "results-test/findings.json"]
        + [f"results-test/tables/{t}.csv" for t in TABLES]
        + [
            "results-test/figures/table5_curve.png",
            "results-test/figures/jsd_mnist.png",
            "results-test/figures/reliability_mukhoti.png",
            "results-test/figures/data_maps/mukhoti/lenet.png",
            "results-test/figures/risk_coverage_mnist.png",
            "results-test/figures/risk_coverage_mukhoti.png",
        ]
    )
    snakemake(
        workflow_copy, "--cores", "2", "--allowed-rules", *EVAL_RULES, "--rerun-triggers", "mtime", "--", *targets
    )
    for path in targets:
        assert (workflow_copy / path).stat().st_size > 0, path
    metrics = pd.read_parquet(workflow_copy / "results-test/evaluation/metrics.parquet")
    assert set(metrics["corpus"]) == {"mnist", "mukhoti"} and set(metrics["seed"]) == {0, 1, 2}
    assert set(metrics["stratum"]) == {"all", "HLV", "NoHLV"}
    table3 = pd.read_csv(workflow_copy / "results-test/tables/table3.csv")
    assert len(table3) == 2 * 6 and "LeNet · HLV" in table3.columns
    findings = json.loads((workflow_copy / "results-test/findings.json").read_text())
    assert "SIMULATED" in findings["preface"] and len(findings["findings"]) == 6
    assert "Not run" not in findings["findings"][4]["detail"]  # both controls were trained
    # the controls as rows, T before/after, selective views, the three test families
    controls = pd.read_csv(workflow_copy / "results-test/tables/table_controls.csv")
    assert (
        controls["target"].tolist() == ["human_uncertainty", "label_smoothing", "human_shuffled", "human_majority"] * 2
    )
    temperature = pd.read_csv(workflow_copy / "results-test/tables/table_temperature.csv")
    assert "LeNet · after T" in temperature.columns and "T (fitted on val)" in set(temperature["metric"])
    selective = pd.read_csv(workflow_copy / "results-test/tables/table_selective.csv")
    assert {"AURC", "E-AURC", "HLV AUROC of predictive entropy"} <= set(selective["metric"])
    tests = pd.read_parquet(workflow_copy / "results-test/evaluation/paired_tests.parquet")
    assert set(tests["family"]) == {"paper", "controls", "temperature"}
    assert {"label_smoothing", "human_shuffled"} <= set(tests.loc[tests["family"] == "controls", "control"])
    fitted = pd.read_parquet(workflow_copy / "results-test/evaluation/temperature.parquet")
    assert len(fitted) == 2 * 2 * 6 * 3 and (fitted["temperature"] > 0).all()
    assert "SIMULATED" in (workflow_copy / "results-test/tables/table_selective.md").read_text()
    assert {f["verdict"] for f in findings["findings"]} <= {"supported", "partly", "not reproduced", "inconclusive"}
    assert findings["settings"]["data_map_gold"] == "trained_target"
    # the synthetic target's data map is on its own (original) label, not the human majority
    maps = pd.read_parquet(workflow_copy / "results-test/evaluation/data_maps.parquet")
    study = pd.read_parquet(workflow_copy / "results-test/study/mukhoti.parquet").set_index("image_id")
    synth = maps[(maps["corpus"] == "mukhoti") & (maps["target"] == "original")]
    assert (synth["gold"].to_numpy() == study.loc[synth["image_id"], "label"].to_numpy()).all()
    vs_paper = pd.read_csv(workflow_copy / "results-test/tables/table9_vs_paper.csv")
    assert "LeNet · paper" in vs_paper.columns
    assert "SIMULATED" in (workflow_copy / "results-test/tables/table4_vs_paper.md").read_text()
    assert "SIMULATED" in (workflow_copy / "results-test/tables/table2.md").read_text()
    # the labels sentence is a derived param: it must not make finished jobs rerun
    assert dry_run_jobs(workflow_copy, "--allowed-rules", *EVAL_RULES, "--", *targets) == {}
    # the report: one self-contained HTML file whose captions say the labels are simulated
    snakemake(
        workflow_copy,
        "--allowed-rules",
        *EVAL_RULES,
        "--rerun-triggers",
        "mtime",
        "--report",
        "results-test/report.html",
        "--",
        *targets,
    )
    html = (workflow_copy / "results-test/report.html").read_text()
    assert "SIMULATED" in html and "Table 3" in html
    assert "Table 9 against the paper" in html and "Table 4 against the paper" in html
    assert "Controls (beyond the paper)" in html and "Risk-coverage (beyond the paper)" in html
    # docutils shows a caption it cannot parse as a "System Message" box in the report
    assert "system-message" not in html, "a report caption is not valid reStructuredText"


@pytest.mark.workflow
def test_fabricated_runs_without_the_controls_skip_their_rows(workflow_copy):
    """The default grid may leave the controls out: their comparisons, rows and findings are skipped."""
    overlay_path = workflow_copy / "config/test.yaml"
    overlay = yaml.safe_load(overlay_path.read_text())
    plain = {**GRID, "targets": [t for t in GRID["targets"] if t not in ("label_smoothing", "human_shuffled")]}
    overlay["training"] = {**(overlay.get("training") or {}), **plain}
    overlay_path.write_text(yaml.safe_dump(overlay))
    fabricate(workflow_copy, corpora=("mnist", "mukhoti"))
    targets = [
        "results-test/findings.json",
        "results-test/tables/table_controls.md",
        "results-test/figures/risk_coverage_mnist.png",
    ]
    snakemake(
        workflow_copy, "--cores", "2", "--allowed-rules", *EVAL_RULES, "--rerun-triggers", "mtime", "--", *targets
    )
    tests = pd.read_parquet(workflow_copy / "results-test/evaluation/paired_tests.parquet")
    assert (
        "controls" not in set(tests["family"])
        and not tests["control"].isin(["label_smoothing", "human_shuffled"]).any()
    )
    text = (workflow_copy / "results-test/tables/table_controls.md").read_text()
    assert "Not run (not in training.targets, so no row): label_smoothing, human_shuffled." in text
    findings = json.loads((workflow_copy / "results-test/findings.json").read_text())["findings"]
    assert [f["verdict"] for f in findings[4:]] == ["not reproduced"] * 2
    assert all(f["detail"].startswith("Not run: this run lacks") for f in findings[4:])


@pytest.mark.workflow
def test_tiny_run_produces_every_table_and_figure(tiny_run):
    tables = tiny_run / "results-test/tables"
    for name in TABLES:
        for ext in ("md", "csv", "parquet"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0
    figures = tiny_run / "results-test/figures"
    assert (figures / "table5_curve.png").exists()
    assert list((figures / "data_maps").glob("*/*.png"))
    assert list(figures.glob("jsd_*.png")) and list(figures.glob("reliability_*.png"))
    assert list(figures.glob("risk_coverage_*.png"))
    assert (tiny_run / "results-test/findings.md").read_text().startswith("# Findings check")
