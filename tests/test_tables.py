"""The paper-layout tables from synthetic seed summaries."""

import itertools

import numpy as np
import pandas as pd
import pytest

from softdigits import stats as S
from softdigits import tables as T

MODELS = ["simple_ffn", "deeper_ffn", "lenet"]
TARGETS = ["original", "human_majority", "human_equal", "human_uncertainty"]
ORDER = {"corpus": ["mnist", "mukhoti"], "model": MODELS, "target": TARGETS}


def synthetic_metrics(seeds=(0, 1, 2)):
    rng = np.random.default_rng(0)
    rows = []
    for corpus, model, target, seed in itertools.product(ORDER["corpus"], MODELS, TARGETS, seeds):
        for eval_set, metric in (("orig", "accuracy"), ("human", "accuracy"), ("human_soft", "kl"),
                                 ("orig", "brier"), ("human", "brier"), ("human_soft", "brier"),
                                 ("human", "ece"), ("orig", "ece")):
            for stratum in ("all", "HLV", "NoHLV"):
                soft = target.startswith("human_") and target != "human_majority"
                base = {"accuracy": 0.8, "kl": 0.9, "brier": 0.3, "ece": 0.1}[metric]
                shift = (0.05 if metric == "accuracy" else -0.3 * base) if soft else 0.0
                rows.append(dict(corpus=corpus, model=model, target=target, seed=seed, split="test",
                                 eval_set=eval_set, stratum=stratum, metric=metric,
                                 value=base + shift + rng.normal(0, 0.01)))
    return pd.DataFrame(rows)


def summary_of(metrics):
    return S.seed_summary(metrics, ["corpus", "model", "target", "split", "eval_set", "stratum", "metric"])


def test_table2_layout_matches_the_paper():
    metrics = synthetic_metrics()
    wide, long = T.metric_table(summary_of(metrics), T.METRIC_TABLES[0], ORDER)
    assert list(wide.columns[:3]) == ["dataset", "eval.", "target"]
    assert list(wide.columns[3:]) == [f"{m} · {s}" for m in ("SimpleFFN", "DeeperFFN", "LeNet") for s in ("NoHLV", "HLV")]
    assert len(wide) == 2 * 2 * 4
    assert wide["target"].tolist()[:4] == TARGETS
    assert wide["dataset"].iloc[0] == "MNIST" and wide["eval."].iloc[0] == "original labels"
    # a cell is mean±std in percent of the matching seeds
    sel = metrics.query("corpus == 'mnist' and model == 'lenet' and target == 'original' and eval_set == 'orig' "
                        "and stratum == 'HLV' and metric == 'accuracy'")["value"]
    assert wide.loc[0, "LeNet · HLV"] == f"{sel.mean() * 100:.2f}±{sel.std(ddof=1) * 100:.2f}"
    assert set(long["metric"]) == {"accuracy"} and set(long["stratum"]) == {"NoHLV", "HLV"}


@pytest.mark.parametrize("spec", T.METRIC_TABLES, ids=lambda s: s.name)
def test_every_metric_table_is_full(spec):
    wide, long = T.metric_table(summary_of(synthetic_metrics()), spec, ORDER)
    n_rows = 2 * 4 * (len(spec.eval_sets) if "eval_set" in spec.rows else 1)
    assert len(wide) == n_rows
    assert (wide.iloc[:, len(spec.rows):] != "").all().all()


def test_single_seed_cells_have_no_spread():
    wide, _ = T.metric_table(summary_of(synthetic_metrics(seeds=(0,))), T.METRIC_TABLES[1], ORDER)
    assert "±" not in wide.iloc[0, 2]


def test_spearman_and_tests_tables(tmp_path):
    sp = pd.DataFrame([dict(corpus=c, model=m, target=t, stratum="all", uncertainty=u, variable=v,
                            rho=-0.4, p_permutation=0.001)
                       for c, m, t, u, v in itertools.product(ORDER["corpus"], MODELS, TARGETS,
                                                              ["u_mean", "u_prop"], ["confidence", "variability"])])
    wide, long = T.spearman_table(sp, ORDER)
    assert len(wide) == 2 * 2 * 4 and wide.iloc[0, 3] == "-0.400 (p=0.001)"
    assert list(wide.columns[:3]) == ["dataset", "human unc.", "target"]
    tests = S.paired_comparisons(synthetic_metrics(seeds=range(6)), [("human_uncertainty", "human_majority")], alpha=0.05)
    twide, tlong = T.tests_table(tests, ORDER)
    assert len(twide) == 2 * 3 * 3 * 3  # corpora x headline metrics x strata x models
    assert (twide["better & significant"] == "yes").all()
    paths = T.table_paths(tmp_path, "paired_tests")
    T.write_table_files(twide, tlong, paths, title="t", labels="Human labels: SIMULATED.", notes="n")
    text = paths["md"].read_text()
    assert text.startswith("# t\n\nHuman labels: SIMULATED.") and "| dataset |" in text
    assert len(pd.read_csv(paths["csv"])) == len(twide)
    assert len(pd.read_parquet(paths["parquet"])) == len(tlong)
