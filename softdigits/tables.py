"""The paper's result tables (2, 3, 4, 9, 10, an ECE table and the paired tests) in its layout,
and Tables 9 and 4 beside the paper's published values.

Every table is built from a long-form frame (seed summaries, Spearman rows or
paired tests) and written three ways: Markdown (for reading), CSV in the same
layout (for the report) and the long-form Parquet rows it was built from (for
checking). Cells are "mean±std" over seeds (sample std); accuracy in percent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from softdigits.io import markdown_table, write_csv, write_table, write_text

MODEL_NAMES = {"simple_ffn": "SimpleFFN", "deeper_ffn": "DeeperFFN", "lenet": "LeNet"}
CORPUS_NAMES = {"mnist": "MNIST", "mukhoti": "Mukhoti", "ardis": "ARDIS", "weiss": "Weiss"}
EVAL_SET_NAMES = {"orig": "original labels", "human": "human majority", "human_soft": "human soft label"}


@dataclass(frozen=True)
class MetricTable:
    """A seed-summary table: one metric, rows and columns drawn from the key columns."""

    name: str
    title: str
    metric: str
    eval_sets: tuple[str, ...]
    strata: tuple[str, ...]
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    percent: bool = False
    decimals: int = 3
    note: str = ""


METRIC_TABLES = (
    MetricTable("table2", "Table 2: test accuracy (%) by evaluation set and human-label-variation stratum",
                "accuracy", ("orig", "human"), ("NoHLV", "HLV"), ("corpus", "eval_set", "target"),
                ("model", "stratum"), percent=True, decimals=2),
    MetricTable("table3", "Table 3: KL(human || model) in nats on the test set, by stratum",
                "kl", ("human_soft",), ("NoHLV", "HLV"), ("corpus", "target"), ("model", "stratum")),
    MetricTable("table9", "Table 9: overall test accuracy (%) on both evaluation sets",
                "accuracy", ("orig", "human"), ("all",), ("corpus", "target"), ("model", "eval_set"),
                percent=True, decimals=2),
    MetricTable("table10", "Table 10: multiclass Brier score (summed over classes) on the test set, by stratum",
                "brier", ("orig", "human", "human_soft"), ("NoHLV", "HLV"), ("corpus", "eval_set", "target"),
                ("model", "stratum")),
    MetricTable("table_ece", "Extra table: expected calibration error (15 bins) on the test set",
                "ece", ("human", "orig"), ("all", "NoHLV", "HLV"), ("corpus", "eval_set", "target"),
                ("model", "stratum")),
)


def mean_std(mean: float, std: float, n: int, *, percent: bool, decimals: int) -> str:
    if not np.isfinite(mean):
        return ""
    scale = 100.0 if percent else 1.0
    text = f"{mean * scale:.{decimals}f}"
    if n >= 2 and np.isfinite(std):
        text += f"±{std * scale:.{decimals}f}"
    return text


def _display(column: str, value) -> str:
    names = {"model": MODEL_NAMES, "corpus": CORPUS_NAMES, "eval_set": EVAL_SET_NAMES}.get(column, {})
    return names.get(value, str(value))


def layout(
    long: pd.DataFrame, cell: pd.Series, rows: tuple[str, ...], columns: tuple[str, ...],
    order: dict[str, list],
) -> pd.DataFrame:
    """Pivot formatted `cell` strings into the paper's layout, in `order` of each key."""
    frame = long[list(rows) + list(columns)].copy()
    frame["cell"] = cell.to_numpy()
    for key in list(rows) + list(columns):
        frame[key] = pd.Categorical(frame[key], categories=[v for v in order[key] if v in set(frame[key])])
    wide = frame.pivot_table(index=list(rows), columns=list(columns), values="cell",
                             aggfunc="first", observed=True, sort=True).fillna("")
    wide.columns = [" · ".join(_display(k, v) for k, v in zip(columns, col)) if len(columns) > 1
                    else _display(columns[0], col) for col in wide.columns]
    wide = wide.reset_index()
    for key in rows:
        wide[key] = wide[key].astype(str).map(lambda v, k=key: _display(k, v))
    return wide.rename(columns={"corpus": "dataset", "eval_set": "eval.", "target": "target",
                                "uncertainty": "human unc."})


def metric_table(summary: pd.DataFrame, spec: MetricTable, order: dict[str, list], split: str = "test"):
    """(paper layout, long-form rows) of one MetricTable from the seed summary."""
    long = summary[(summary["metric"] == spec.metric) & summary["eval_set"].isin(spec.eval_sets)
                   & summary["stratum"].isin(spec.strata) & (summary["split"] == split)]
    cells = pd.Series([mean_std(m, s, n, percent=spec.percent, decimals=spec.decimals)
                       for m, s, n in zip(long["mean"], long["std"], long["n_seeds"])], dtype=object)
    order = order | {"eval_set": list(spec.eval_sets), "stratum": list(spec.strata)}
    return layout(long, cells, spec.rows, spec.columns, order), long.reset_index(drop=True)


def spearman_table(spearman: pd.DataFrame, order: dict[str, list], stratum: str = "all"):
    """Table 4: Spearman rho (permutation p) of human uncertainty with model confidence/variability."""
    long = spearman[spearman["stratum"] == stratum]
    cells = pd.Series([f"{r:+.3f} (p={p:.2g})" if np.isfinite(r) else ""
                       for r, p in zip(long["rho"], long["p_permutation"])], dtype=object)
    order = order | {"uncertainty": ["u_mean", "u_prop"], "variable": ["confidence", "variability"]}
    wide = layout(long, cells, ("corpus", "uncertainty", "target"), ("model", "variable"), order)
    return wide, long.reset_index(drop=True)


def tests_table(tests: pd.DataFrame, order: dict[str, list], split: str = "test"):
    """The paired-by-seed comparisons on the headline metrics, one row per test."""
    headline = {("accuracy", "human"), ("kl", "human_soft"), ("brier", "human_soft")}
    keep = [(m, e) in headline for m, e in zip(tests["metric"], tests["eval_set"])]
    long = tests[np.array(keep, dtype=bool) & (tests["split"] == split).to_numpy()].copy()
    scale = np.where(long["metric"] == "accuracy", 100.0, 1.0)
    fmt = lambda v: f"{v:+.3f}"
    rank = {k: {v: i for i, v in enumerate(vals)} for k, vals in order.items()}
    long = (long.assign(_corpus=long["corpus"].map(rank["corpus"]), _model=long["model"].map(rank["model"]),
                        _stratum=long["stratum"].map({"all": 0, "HLV": 1, "NoHLV": 2}))
            .sort_values(["_corpus", "metric", "_stratum", "_model", "treatment", "control"])
            .drop(columns=["_corpus", "_model", "_stratum"]))
    wide = pd.DataFrame({
        "dataset": long["corpus"].map(lambda v: _display("corpus", v)),
        "metric": long["metric"] + " / " + long["eval_set"].map(lambda v: _display("eval_set", v)),
        "stratum": long["stratum"],
        "model": long["model"].map(lambda v: _display("model", v)),
        "comparison": long["treatment"] + " − " + long["control"],
        "mean diff [95% CI]": [f"{fmt(m * s)} [{fmt(lo * s)}, {fmt(hi * s)}]" for m, lo, hi, s in
                               zip(long["mean_diff"], long["ci_low"], long["ci_high"], scale)],
        "d_z": long["cohen_dz"].map(lambda v: f"{v:+.2f}"),
        "p (paired t)": long["p_t"].map(lambda v: f"{v:.3g}"),
        "p Holm": long["p_holm"].map(lambda v: f"{v:.3g}"),
        "p sign-flip": long["p_signflip"].map(lambda v: f"{v:.3g}"),
        "seeds": long["n_pairs"],
        "better & significant": np.where(long["improved"] & long["significant"], "yes", "no"),
    })
    return wide, long.reset_index(drop=True)


# ------------------------------------------------------------ against the paper

PAPER_TABLE9_COLUMNS = ["corpus", "target", "model", "eval_set", "mean_pct", "std_pct"]
PAPER_TABLE4_COLUMNS = ["corpus", "target", "variable", "expected", "statement"]
EXPECTATIONS = ("negative", "positive", "negligible")


def read_paper_table(path: str | os.PathLike, columns: list[str]) -> pd.DataFrame:
    """A transcribed paper table (resources/evaluation); one-line error naming file and column."""
    paper = pd.read_csv(path)
    missing = [c for c in columns if c not in paper]
    if missing:
        raise ValueError(f"{path}: lacks column(s) {missing}")
    if "expected" in columns and not paper["expected"].isin(EXPECTATIONS).all():
        row = int(np.flatnonzero(~paper["expected"].isin(EXPECTATIONS))[0])
        raise ValueError(f"{path}: row {row}: expected {paper['expected'].iloc[row]!r} not in {EXPECTATIONS}")
    return paper


def table9_vs_paper(summary: pd.DataFrame, paper: pd.DataFrame, order: dict[str, list], split: str = "test"):
    """This run's Table 9 cells beside the paper's (corpora and targets of this run only)."""
    ours = summary[(summary["metric"] == "accuracy") & summary["eval_set"].isin(["orig", "human"])
                   & (summary["stratum"] == "all") & (summary["split"] == split)]
    keys = ["corpus", "target", "model", "eval_set"]
    long = ours[keys + ["mean", "std", "n_seeds"]].merge(
        paper[keys + ["mean_pct", "std_pct"]].rename(columns={"mean_pct": "paper_mean_pct",
                                                             "std_pct": "paper_std_pct"}),
        on=keys, how="left")
    long = long.assign(mean_pct=long["mean"] * 100, std_pct=long["std"] * 100).drop(columns=["mean", "std"])
    long["diff_pp"] = long["mean_pct"] - long["paper_mean_pct"]
    long = long[keys + ["mean_pct", "std_pct", "n_seeds", "paper_mean_pct", "paper_std_pct", "diff_pp"]]
    cells = []
    for r in long.itertuples():
        this = mean_std(r.mean_pct, r.std_pct, r.n_seeds, percent=False, decimals=2)
        theirs = mean_std(r.paper_mean_pct, r.paper_std_pct, 2, percent=False, decimals=2)
        diff = f"{r.diff_pp:+.2f}" if np.isfinite(r.diff_pp) else ""
        cells += [(r, "this run", this), (r, "paper", theirs), (r, "Δ pp", diff)]
    frame = pd.DataFrame([{k: getattr(r, k) for k in keys} | {"source": src} for r, src, _ in cells],
                         columns=keys + ["source"])
    text = pd.Series([c for _, _, c in cells], dtype=object)
    order = order | {"eval_set": ["orig", "human"], "source": ["this run", "paper", "Δ pp"]}
    wide = layout(frame, text, ("corpus", "eval_set", "target"), ("model", "source"), order)
    return wide, long.reset_index(drop=True)


def agrees_with_expectation(rho: float, p: float, expected: str, *, alpha: float, negligible_rho: float) -> bool:
    """negative / positive: that sign with permutation p < alpha; negligible: |rho| < negligible_rho."""
    if not np.isfinite(rho):
        return False
    if expected == "negligible":
        return abs(rho) < negligible_rho
    sign = 1.0 if expected == "positive" else -1.0
    return bool(sign * rho > 0 and np.isfinite(p) and p < alpha)


def table4_vs_paper(spearman: pd.DataFrame, paper: pd.DataFrame, order: dict[str, list], *,
                    alpha: float, negligible_rho: float, stratum: str = "all"):
    """This run's Table 4 correlations against what the paper's §3.4 states for each cell."""
    ours = spearman[spearman["stratum"] == stratum]
    long = ours.merge(paper[PAPER_TABLE4_COLUMNS], on=["corpus", "target", "variable"], how="inner")
    long["agrees"] = [agrees_with_expectation(r, p, e, alpha=alpha, negligible_rho=negligible_rho)
                      for r, p, e in zip(long["rho"], long["p_permutation"], long["expected"])]
    long = long[["corpus", "model", "uncertainty", "target", "variable", "rho", "p_permutation", "expected",
                 "agrees", "statement"]].reset_index(drop=True)
    cells = pd.Series([f"{r:+.3f} ({'agrees' if a else 'differs'})" if np.isfinite(r) else "not computed"
                       for r, a in zip(long["rho"], long["agrees"])], dtype=object)
    order = order | {"uncertainty": ["u_mean", "u_prop"], "variable": ["confidence", "variability"],
                     "expected": list(EXPECTATIONS)}
    wide = layout(long, cells, ("corpus", "target", "variable", "expected"), ("model", "uncertainty"), order)
    return wide.rename(columns={"expected": "paper (§3.4)"}), long


def write_table_files(wide: pd.DataFrame, long: pd.DataFrame, paths: dict[str, str | os.PathLike],
                      *, title: str, labels: str, notes: str) -> None:
    """Markdown (title, human-labels sentence, table, notes), CSV in layout, long-form Parquet."""
    write_text(f"# {title}\n\n{labels}\n\n{markdown_table(wide)}\n{notes}\n", paths["md"])
    write_csv(wide, paths["csv"])
    write_table(long, paths["parquet"], metadata={"title": title, "human_labels": labels})


NOTES = {
    "table2": "Mean±std over seeds (sample std). original labels: the corpus's own label (synthetic "
              "for Mukhoti); human majority: the majority vote of the annotators (not-a-digit as set "
              "by training.not_a_digit).",
    "table3": "Mean±std over seeds. KL(human || model) in nats against the human soft label with its "
              "not-a-digit mass dropped and the digits renormalised; 0·log 0 = 0; model probabilities "
              "clipped at evaluation.kl_epsilon and renormalised.",
    "table9": "Mean±std over seeds, all test images.",
    "table10": "Mean±std over seeds. Brier = sum over classes of (p_model − p_reference)²; against the "
               "human majority the model's not-a-digit probability is 0.",
    "table_ece": "Mean±std over seeds. Equal-width bins of top-class probability; secondary metric (ECE "
                 "only looks at the top class).",
    "table4": "Spearman rho over the training images of the model data maps (last epochs of all seeds; "
              "{gold}); p: two-sided permutation p-value (ranks permuted; ties as average ranks).",
    "table9_vs_paper": "This run: mean±std over its seeds, all test images. Paper: the published Table 9 "
                       "(human annotators, 6 seeds), transcribed in resources/evaluation/paper_table9.csv; its "
                       "soft-label rows 3 and 4 are assumed to be human_equal and human_uncertainty (see "
                       "resources/evaluation/README.md). Δ pp = this run − paper, in accuracy points.",
    "table4_vs_paper": "The paper's Table 4 numbers are lost from its text, so each cell is compared with what "
                       "§3.4 states (resources/evaluation/paper_table4.csv): negative / positive = rho of that "
                       "sign with permutation p < {alpha}; negligible = |rho| < {negligible_rho}. Correlations "
                       "over all training images of the model data maps ({gold}).",
    "paired_tests": "Paired by seed: treatment − control per seed. Primary test: two-sided paired t-test; "
                    "Holm correction within each corpus × metric × evaluation set; sign-flip: exact "
                    "permutation test as a distribution-free check (its minimum with 6 seeds is 1/32). "
                    "d_z = mean difference / sd of differences. Accuracy differences in percentage points.",
}


def table_paths(folder: str | os.PathLike, name: str) -> dict[str, Path]:
    return {ext: Path(folder) / f"{name}.{ext}" for ext in ("md", "csv", "parquet")}


def write_evaluation_tables(*, summary, spearman, tests, studies: dict[str, str], order: dict[str, list],
                            paper_table9, paper_table4, data_map_gold: str, alpha: float,
                            negligible_rho: float, outputs: dict[str, str]) -> None:
    """Read the evaluation's long-form files and write every table (outputs: '<name>_<ext>' -> path)."""
    from softdigits.dynamics import GOLD_NOTES
    from softdigits.metrics import labels_sentence, study_origins

    labels = labels_sentence(study_origins(studies))
    summary, spearman, tests = (pd.read_parquet(p) for p in (summary, spearman, tests))
    built = {spec.name: (spec.title, *metric_table(summary, spec, order)) for spec in METRIC_TABLES}
    built["table4"] = ("Table 4: Spearman correlation of human uncertainty with model confidence and "
                       "variability (model data maps)", *spearman_table(spearman, order))
    built["paired_tests"] = ("Paired-by-seed tests of the paper's target comparisons",
                             *tests_table(tests, order))
    built["table9_vs_paper"] = ("Table 9 against the paper: overall test accuracy (%)",
                                *table9_vs_paper(summary, read_paper_table(paper_table9, PAPER_TABLE9_COLUMNS),
                                                 order))
    built["table4_vs_paper"] = ("Table 4 against the paper: Spearman rho of human uncertainty with model "
                                "confidence and variability, and what the paper states",
                                *table4_vs_paper(spearman, read_paper_table(paper_table4, PAPER_TABLE4_COLUMNS),
                                                 order, alpha=alpha, negligible_rho=negligible_rho))
    fill = {"gold": GOLD_NOTES[data_map_gold], "alpha": alpha, "negligible_rho": negligible_rho}
    for name, (title, wide, long) in built.items():
        paths = {ext: outputs[f"{name}_{ext}"] for ext in ("md", "csv", "parquet")}
        write_table_files(wide, long, paths, title=title, labels=labels, notes=NOTES[name].format(**fill))
