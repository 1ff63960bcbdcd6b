"""The paper-layout tables from synthetic seed summaries."""

import itertools

import numpy as np
import pandas as pd
import pytest

from softdigits.evaluation import stats as S
from softdigits.evaluation import tables as T

MODELS = ["simple_ffn", "deeper_ffn", "lenet"]
TARGETS = ["original", "human_majority", "human_equal", "human_uncertainty"]
ORDER = {"corpus": ["mnist", "mukhoti"], "model": MODELS, "target": TARGETS}


def synthetic_metrics(seeds=(0, 1, 2)):
    rng = np.random.default_rng(0)
    rows = []
    for corpus, model, target, seed in itertools.product(ORDER["corpus"], MODELS, TARGETS, seeds):
        for eval_set, metric in (
            ("orig", "accuracy"),
            ("human", "accuracy"),
            ("human_soft", "kl"),
            ("orig", "brier"),
            ("human", "brier"),
            ("human_soft", "brier"),
            ("human", "ece"),
            ("orig", "ece"),
        ):
            for stratum in ("all", "HLV", "NoHLV"):
                soft = target.startswith("human_") and target != "human_majority"
                base = {"accuracy": 0.8, "kl": 0.9, "brier": 0.3, "ece": 0.1}[metric]
                shift = (0.05 if metric == "accuracy" else -0.3 * base) if soft else 0.0
                rows.append(
                    dict(
                        corpus=corpus,
                        model=model,
                        target=target,
                        seed=seed,
                        split="test",
                        eval_set=eval_set,
                        stratum=stratum,
                        metric=metric,
                        value=base + shift + rng.normal(0, 0.01),
                    )
                )
    return pd.DataFrame(rows)


def summary_of(metrics):
    return S.seed_summary(metrics, ["corpus", "model", "target", "split", "eval_set", "stratum", "metric"])


def test_table2_layout_matches_the_paper():
    metrics = synthetic_metrics()
    wide, long = T.metric_table(summary_of(metrics), T.TABLES["table2"].build, ORDER)
    assert list(wide.columns[:3]) == ["dataset", "eval.", "target"]
    assert list(wide.columns[3:]) == [
        f"{m} · {s}" for m in ("SimpleFFN", "DeeperFFN", "LeNet") for s in ("NoHLV", "HLV")
    ]
    assert len(wide) == 2 * 2 * 4
    assert wide["target"].tolist()[:4] == TARGETS
    assert wide["dataset"].iloc[0] == "MNIST" and wide["eval."].iloc[0] == "original labels"
    # a cell is mean±std in percent of the matching seeds
    sel = metrics.query(
        "corpus == 'mnist' and model == 'lenet' and target == 'original' and eval_set == 'orig' "
        "and stratum == 'HLV' and metric == 'accuracy'"
    )["value"]
    assert wide.loc[0, "LeNet · HLV"] == f"{sel.mean() * 100:.2f}±{sel.std(ddof=1) * 100:.2f}"
    assert set(long["metric"]) == {"accuracy"} and set(long["stratum"]) == {"NoHLV", "HLV"}


METRIC_VIEWS = {name: t.build for name, t in T.TABLES.items() if isinstance(t.build, T.MetricView)}


@pytest.mark.parametrize("spec", METRIC_VIEWS.values(), ids=METRIC_VIEWS)
def test_every_metric_table_is_full(spec):
    wide, long = T.metric_table(summary_of(synthetic_metrics()), spec, ORDER)
    n_rows = 2 * 4 * (len(spec.eval_sets) if "eval_set" in spec.rows else 1)
    assert len(wide) == n_rows
    assert (wide.iloc[:, len(spec.rows) :] != "").all().all()


def test_single_seed_cells_have_no_spread():
    wide, _ = T.metric_table(summary_of(synthetic_metrics(seeds=(0,))), T.TABLES["table3"].build, ORDER)
    assert "±" not in wide.iloc[0, 2]


def test_spearman_and_tests_tables(tmp_path):
    sp = pd.DataFrame(
        [
            dict(corpus=c, model=m, target=t, stratum="all", uncertainty=u, variable=v, rho=-0.4, p_permutation=0.001)
            for c, m, t, u, v in itertools.product(
                ORDER["corpus"], MODELS, TARGETS, ["u_mean", "u_prop"], ["confidence", "variability"]
            )
        ]
    )
    wide, long = T.spearman_table(sp, ORDER)
    assert len(wide) == 2 * 2 * 4 and wide.iloc[0, 3] == "-0.400 (p=0.001)"
    assert list(wide.columns[:3]) == ["dataset", "human unc.", "target"]
    tests = S.paired_comparisons(
        synthetic_metrics(seeds=range(6)), [("human_uncertainty", "human_majority")], alpha=0.05
    )
    twide, tlong = T.tests_table(tests, ORDER)
    assert len(twide) == 2 * 3 * 3 * 3  # corpora x headline metrics x strata x models
    assert (twide["better & significant"] == "yes").all()
    paths = T.table_paths(tmp_path, "paired_tests")
    T.write_table_files(twide, tlong, paths, title="t", labels="Human labels: SIMULATED.", notes="n")
    text = paths["md"].read_text()
    assert text.startswith("# t\n\nHuman labels: SIMULATED.") and "| dataset |" in text
    assert len(pd.read_csv(paths["csv"])) == len(twide)
    assert len(pd.read_parquet(paths["parquet"])) == len(tlong)


REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
PAPER9 = REPO / "resources/evaluation/paper_table9.csv"
PAPER4 = REPO / "resources/evaluation/paper_table4.csv"


def test_paper_table9_transcription_is_complete_and_matches_the_text():
    paper = T.read_paper_table(PAPER9, T.PAPER_TABLE9_COLUMNS)
    assert len(paper) == 2 * 4 * 3 * 2
    assert not paper.duplicated(["corpus", "target", "model", "eval_set"]).any()
    cell = paper.set_index(["corpus", "target", "model", "eval_set"])["mean_pct"]
    # the numbers the paper's F.1 text quotes: synthetic-trained LeNet 87.67 / 60.46 on Mukhoti
    assert cell["mukhoti", "original", "lenet", "orig"] == 87.67
    assert cell["mukhoti", "original", "lenet", "human"] == 60.46
    assert cell["mukhoti", "human_uncertainty", "lenet", "human"] == 72.12


def test_table9_vs_paper_puts_the_paper_beside_this_run():
    paper = T.read_paper_table(PAPER9, T.PAPER_TABLE9_COLUMNS)
    summary = summary_of(synthetic_metrics())
    wide, long = T.table9_vs_paper(summary, paper, ORDER)
    assert len(long) == 2 * 4 * 3 * 2 and long["paper_mean_pct"].notna().all()
    row = long.query("corpus == 'mukhoti' and target == 'original' and model == 'lenet' and eval_set == 'orig'").iloc[0]
    assert row["diff_pp"] == pytest.approx(row["mean_pct"] - 87.67)
    assert list(wide.columns[:3]) == ["dataset", "eval.", "target"]
    assert "LeNet · paper" in wide.columns and "LeNet · Δ pp" in wide.columns
    assert (wide["LeNet · paper"] != "").all()
    mukhoti_orig = wide[(wide["dataset"] == "Mukhoti") & (wide["eval."] == "original labels")]
    assert mukhoti_orig.iloc[0]["LeNet · paper"] == "87.67±2.52"


@pytest.mark.parametrize(
    "rho, n, expected, agreement",
    [
        (-0.4, 500, "negative", "agrees"),
        (-0.1, 30, "negative", "inconclusive"),  # too few images to tell the sign
        (0.4, 500, "negative", "differs"),  # wrong sign
        (0.3, 500, "positive", "agrees"),
        (-0.05, 2000, "negligible", "agrees"),
        (-0.135, 500, "negligible", "inconclusive"),  # its interval crosses -0.2
        (-0.35, 2000, "negligible", "differs"),
        (float("nan"), 500, "negligible", "inconclusive"),
    ],
)
def test_agreement_with_the_paper_can_fail(rho, n, expected, agreement):
    assert T.agreement(rho, n, expected, negligible_rho=0.2) == agreement


def test_table4_vs_paper_marks_each_cell():
    paper = T.read_paper_table(PAPER4, T.PAPER_TABLE4_COLUMNS)
    sp = pd.DataFrame(
        [
            dict(
                corpus=c,
                model=m,
                target=t,
                stratum="all",
                uncertainty=u,
                variable=v,
                rho=(-0.4 if v == "confidence" else 0.3) * (0.1 if t == "original" else 1.0),
                p_permutation=0.001,
                n=2000,
            )
            for c, m, t, u, v in itertools.product(
                ORDER["corpus"], MODELS, TARGETS, ["u_mean", "u_prop"], ["confidence", "variability"]
            )
        ]
    )
    wide, long = T.table4_vs_paper(sp, paper, ORDER, alpha=0.05, negligible_rho=0.2)
    assert (long["agreement"] == "agrees").all()
    assert len(long) == len(paper) * len(MODELS) * 2  # no MNIST original row: the paper says nothing there
    assert "paper (§3.4)" in wide.columns and wide.iloc[0, 4].endswith("(agrees)")
    sp.loc[(sp["corpus"] == "mukhoti") & (sp["target"] == "original"), "rho"] = -0.5
    _, long = T.table4_vs_paper(sp, paper, ORDER, alpha=0.05, negligible_rho=0.2)
    assert (long.query("target == 'original' and variable == 'confidence'")["agreement"] == "differs").all()


def test_paper_table_errors_name_file_and_column(tmp_path):
    bad = tmp_path / "p.csv"
    bad.write_text("corpus,target,variable,expected,statement\nmnist,human_equal,confidence,strong,x\n")
    with pytest.raises(ValueError, match=r"p.csv: row 0: expected 'strong'"):
        T.read_paper_table(bad, T.PAPER_TABLE4_COLUMNS)
    with pytest.raises(ValueError, match=r"p.csv: lacks column\(s\) \['model', 'eval_set', 'mean_pct'"):
        T.read_paper_table(bad, T.PAPER_TABLE9_COLUMNS)


# ------------------------------------------------ beyond the paper: controls, T, selective

ALL_TARGETS = TARGETS + ["label_smoothing", "human_shuffled"]
ORDER_ALL = ORDER | {"target": ALL_TARGETS}


def posthoc_metrics(targets=ALL_TARGETS, seeds=range(6)):
    """Per-seed rows of every view before and after T; the controls' HLV KL 0.2 above human_uncertainty's."""
    rng = np.random.default_rng(2)
    rows = []
    views = [
        ("accuracy", "human"),
        ("kl", "human_soft"),
        ("brier", "human_soft"),
        ("ece", "human"),
        ("aurc", "human"),
        ("eaurc", "human"),
    ]
    for corpus, model, target, seed, cal in itertools.product(
        ORDER["corpus"], MODELS, targets, seeds, ("none", "temperature")
    ):
        for metric, eval_set in views:
            for stratum in ("all", "HLV", "NoHLV"):
                value = 0.5 + (0.2 if target in T.CONTROL_TARGETS else 0.0) - (0.05 if cal == "temperature" else 0)
                rows.append(
                    dict(
                        corpus=corpus,
                        model=model,
                        target=target,
                        seed=seed,
                        split="test",
                        calibration=cal,
                        eval_set=eval_set,
                        stratum=stratum,
                        metric=metric,
                        value=value + rng.normal(0, 0.01),
                    )
                )
        for metric, eval_set in (("hlv_auroc", "human"), ("entropy_spearman", "human_soft")):
            rows.append(
                dict(
                    corpus=corpus,
                    model=model,
                    target=target,
                    seed=seed,
                    split="test",
                    calibration=cal,
                    eval_set=eval_set,
                    stratum="all",
                    metric=metric,
                    value=0.7 + rng.normal(0, 0.01),
                )
            )
    return pd.DataFrame(rows)


def posthoc_summary_of(long):
    return S.seed_summary(long, ["corpus", "model", "target", "split", "eval_set", "stratum", "metric", "calibration"])


def test_table_controls_rows_marks_and_not_run():
    long = posthoc_metrics()
    tests = S.all_paired_tests(
        long, paper=[], controls=[("human_uncertainty", c) for c in T.CONTROL_TARGETS], alpha=0.05
    )
    wide, rows = T.table_controls(posthoc_summary_of(long), tests, ORDER_ALL)
    assert wide["target"].tolist()[:4] == ["human_uncertainty", "label_smoothing", "human_shuffled", "human_majority"]
    assert list(wide.columns[2:]) == [
        f"{m} · {s}" for m in ("SimpleFFN", "DeeperFFN", "LeNet") for s in ("NoHLV", "HLV")
    ]
    assert len(wide) == 2 * 4 and set(rows["calibration"]) == {"none"}
    # the controls are 0.2 nats worse: marked *; human_uncertainty and human_majority are not controls
    marked = wide.set_index(["dataset", "target"]).loc[("MNIST", "label_smoothing")]
    assert all(cell.endswith(" *") for cell in marked)
    sel = long.query(
        "corpus == 'mnist' and model == 'lenet' and target == 'label_smoothing' and stratum == 'HLV' "
        "and metric == 'kl' and calibration == 'none'"
    )["value"]
    assert marked["LeNet · HLV"] == f"{sel.mean():.3f}±{sel.std(ddof=1):.3f} *"
    assert (
        not wide.set_index("target").loc["human_majority"].iloc[:, 1:].apply(lambda c: c.str.endswith("*")).any().any()
    )
    # a control as good as human_uncertainty gets no mark
    same = long.assign(value=np.where(long["target"] == "human_shuffled", long["value"] - 0.2, long["value"]))
    tests = S.all_paired_tests(same, paper=[], controls=[("human_uncertainty", "human_shuffled")], alpha=0.05)
    wide, _ = T.table_controls(posthoc_summary_of(same), tests, ORDER_ALL)
    assert (
        not wide.set_index("target").loc["human_shuffled"].iloc[:, 1:].apply(lambda c: c.str.endswith("*")).any().any()
    )
    # controls not trained: no rows, and the note says so
    plain = posthoc_metrics(targets=TARGETS)
    wide, _ = T.table_controls(posthoc_summary_of(plain), tests.iloc[:0], ORDER)
    assert set(wide["target"]) == {"human_uncertainty", "human_majority"}
    assert T.not_run_note(TARGETS) == "Not run (not in training.targets, so no row): label_smoothing, human_shuffled."
    assert T.not_run_note(ALL_TARGETS) == ""


def test_table_temperature_before_after_and_fitted_t():
    long = posthoc_metrics()
    fitted = pd.DataFrame(
        [
            dict(corpus=c, model=m, target=t, seed=s, temperature=1.5 + 0.1 * s)
            for c, m, t, s in itertools.product(ORDER["corpus"], MODELS, ALL_TARGETS, range(6))
        ]
    )
    wide, rows = T.table_temperature(posthoc_summary_of(long), fitted, ORDER_ALL)
    assert list(wide.columns[:4]) == ["dataset", "metric", "stratum", "target"]
    assert "LeNet · before T" in wide.columns and "LeNet · after T" in wide.columns
    # 4 metrics x 3 strata x 6 targets + 6 T rows, per corpus
    assert len(wide) == 2 * (4 * 3 * 6 + 6)
    t_rows = wide[wide["metric"] == T.T_LABEL]
    t = 1.5 + 0.1 * np.arange(6)
    assert (t_rows["LeNet · after T"] == f"{t.mean():.3f}±{t.std(ddof=1):.3f}").all()
    assert (t_rows["LeNet · before T"] == "").all()
    acc = wide[(wide["metric"] == "accuracy % (human majority)") & (wide["stratum"] == "HLV")].iloc[0]
    assert 45 < float(acc["LeNet · before T"].split("±")[0]) < 55  # ~0.5 shown in percent
    assert set(rows["view"]) == {v.label for v in T.TEMPERATURE_VIEWS} | {T.T_LABEL}


def test_table_selective_and_tests_table_families():
    long = posthoc_metrics()
    wide, rows = T.table_selective(posthoc_summary_of(long), ORDER_ALL)
    per_corpus = (2 * 3 + 2) * 6  # AURC, E-AURC x 3 strata; AUROC and Spearman on all images; x targets
    assert len(wide) == 2 * per_corpus
    auroc = wide[wide["metric"] == "HLV AUROC of predictive entropy"]
    assert set(auroc["stratum"]) == {"all"} and (auroc["LeNet · after T"] != "").all()
    tests = S.all_paired_tests(
        long,
        paper=[("human_uncertainty", "human_majority")],
        controls=[("human_uncertainty", "label_smoothing")],
        alpha=0.05,
    )
    twide, tlong = T.tests_table(tests, ORDER_ALL)
    assert twide["family"].tolist() == sorted(twide["family"], key=T.FAMILIES.index)
    shown = set(zip(tlong["calibration"], tlong["metric"]))
    assert ("none", "aurc") in shown and ("temperature", "kl") in shown and (S.AFTER_T, "ece") in shown
    assert ("temperature", "accuracy") not in shown and ("none", "hlv_auroc") not in shown
    assert "label_smoothing: after T − before" in set(twide["comparison"])
