"""The paper's result tables (2, 3, 4, 9, 10, an ECE table and the paired tests) in its layout,
Tables 9 and 4 beside the paper's published values, and the tables beyond the
paper (the controls, temperature scaling, selective prediction).

Every table is built from a long-form frame (seed summaries, Spearman rows or
paired tests) and written three ways: Markdown (for reading), CSV in the same
layout (for the report) and the long-form Parquet rows it was built from (for
checking). Cells are "mean±std" over seeds (sample std); accuracy in percent.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from softdigits.corpora import corpus_name
from softdigits.evaluation.conditions import correlation_outcome, spearman_interval
from softdigits.evaluation.stats import AFTER_T
from softdigits.io import markdown_table, write_csv, write_table, write_text
from softdigits.training.models import model_name
from softdigits.training.targets import CONTROL_TARGETS, PRIMARY_SOFT

EVAL_SET_NAMES = {"orig": "original labels", "human": "human majority", "human_soft": "human soft label"}
CALIBRATION_NAMES = {"none": "before T", "temperature": "after T"}


def mean_std(mean: float, std: float, n: int, *, percent: bool, decimals: int) -> str:
    if not np.isfinite(mean):
        return ""
    scale = 100.0 if percent else 1.0
    text = f"{mean * scale:.{decimals}f}"
    if n >= 2 and np.isfinite(std):
        text += f"±{std * scale:.{decimals}f}"
    return text


def _display(column: str, value) -> str:
    if column == "model":
        return model_name(value)
    if column == "corpus":
        return corpus_name(value)
    return {"eval_set": EVAL_SET_NAMES, "calibration": CALIBRATION_NAMES}.get(column, {}).get(value, str(value))


def layout(
    long: pd.DataFrame,
    cell: pd.Series,
    rows: tuple[str, ...],
    columns: tuple[str, ...],
    order: dict[str, list],
) -> pd.DataFrame:
    """Pivot formatted `cell` strings into the paper's layout, in `order` of each key."""
    frame = long[list(rows) + list(columns)].copy()
    frame["cell"] = cell.to_numpy()
    for key in list(rows) + list(columns):
        frame[key] = pd.Categorical(frame[key], categories=[v for v in order[key] if v in set(frame[key])])
    wide = frame.pivot_table(
        index=list(rows), columns=list(columns), values="cell", aggfunc="first", observed=True, sort=True
    ).fillna("")
    wide.columns = [
        " · ".join(_display(k, v) for k, v in zip(columns, col)) if len(columns) > 1 else _display(columns[0], col)
        for col in wide.columns
    ]
    wide = wide.reset_index()
    for key in rows:
        wide[key] = wide[key].astype(str).map(lambda v, k=key: _display(k, v))
    return wide.rename(
        columns={"corpus": "dataset", "eval_set": "eval.", "target": "target", "uncertainty": "human unc."}
    )


@dataclass(frozen=True)
class MetricView:
    """A seed-summary table: one metric, rows and columns drawn from the key columns."""

    metric: str
    eval_sets: tuple[str, ...]
    strata: tuple[str, ...]
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    percent: bool = False
    decimals: int = 3

    def __call__(self, data: TableInputs):
        return metric_table(data.summary, self, data.order)


def metric_table(summary: pd.DataFrame, spec: MetricView, order: dict[str, list], split: str = "test"):
    """(paper layout, long-form rows) of one MetricView from the seed summary."""
    long = summary[
        (summary["metric"] == spec.metric)
        & summary["eval_set"].isin(spec.eval_sets)
        & summary["stratum"].isin(spec.strata)
        & (summary["split"] == split)
    ]
    cells = pd.Series(
        [
            mean_std(m, s, n, percent=spec.percent, decimals=spec.decimals)
            for m, s, n in zip(long["mean"], long["std"], long["n_seeds"])
        ],
        dtype=object,
    )
    order = order | {"eval_set": list(spec.eval_sets), "stratum": list(spec.strata)}
    return layout(long, cells, spec.rows, spec.columns, order), long.reset_index(drop=True)


def spearman_table(spearman: pd.DataFrame, order: dict[str, list], stratum: str = "all"):
    """Table 4: Spearman rho (permutation p) of human uncertainty with model confidence/variability."""
    long = spearman[spearman["stratum"] == stratum]
    cells = pd.Series(
        [f"{r:+.3f} (p={p:.2g})" if np.isfinite(r) else "" for r, p in zip(long["rho"], long["p_permutation"])],
        dtype=object,
    )
    order = order | {"uncertainty": ["u_mean", "u_prop"], "variable": ["confidence", "variability"]}
    wide = layout(long, cells, ("corpus", "uncertainty", "target"), ("model", "variable"), order)
    return wide, long.reset_index(drop=True)


# Rows of the paired-tests table (the Parquet file keeps every test): per calibration label,
# the (metric, evaluation set) cells shown. Before T: the paper's headline metrics and AURC;
# after T: KL and Brier (does calibration close the soft-hard gap?); after vs before T: the
# metrics temperature scaling is meant to change.
TESTS_HEADLINE = {
    "none": {("accuracy", "human"), ("kl", "human_soft"), ("brier", "human_soft"), ("aurc", "human")},
    "temperature": {("kl", "human_soft"), ("brier", "human_soft")},
    AFTER_T: {("kl", "human_soft"), ("brier", "human_soft"), ("ece", "human"), ("aurc", "human")},
}
FAMILIES = ("paper", "controls", "temperature")


def tests_table(tests: pd.DataFrame, order: dict[str, list], split: str = "test"):
    """The paired-by-seed comparisons on the headline cells (TESTS_HEADLINE), one row per test."""
    tests = tests.assign(
        family=tests["family"] if "family" in tests else "paper",
        calibration=tests["calibration"] if "calibration" in tests else "none",
    )
    keep = [
        (m, e) in TESTS_HEADLINE.get(c, set())
        for m, e, c in zip(tests["metric"], tests["eval_set"], tests["calibration"])
    ]
    long = tests[np.array(keep, dtype=bool) & (tests["split"] == split).to_numpy()].copy()
    scale = np.where(long["metric"] == "accuracy", 100.0, 1.0)

    def fmt(v):
        return f"{v:+.3f}"

    rank = {k: {v: i for i, v in enumerate(vals)} for k, vals in order.items()}
    long = (
        long.assign(
            _family=long["family"].map({f: i for i, f in enumerate(FAMILIES)}),
            _cal=long["calibration"].map({"none": 0, "temperature": 1, AFTER_T: 2}),
            _corpus=long["corpus"].map(rank["corpus"]),
            _model=long["model"].map(rank["model"]),
            _stratum=long["stratum"].map({"all": 0, "HLV": 1, "NoHLV": 2}),
        )
        .sort_values(["_family", "_corpus", "_cal", "metric", "_stratum", "_model", "treatment", "control"])
        .drop(columns=["_family", "_cal", "_corpus", "_model", "_stratum"])
    )
    comparison = [
        f"{t}: after T − before" if c == AFTER_T else f"{t} − {k}"
        for t, k, c in zip(long["treatment"], long["control"], long["calibration"])
    ]
    wide = pd.DataFrame(
        {
            "family": long["family"],
            "dataset": long["corpus"].map(lambda v: _display("corpus", v)),
            "metric": long["metric"] + " / " + long["eval_set"].map(lambda v: _display("eval_set", v)),
            "calibration": long["calibration"].map(lambda v: CALIBRATION_NAMES.get(v, v)),
            "stratum": long["stratum"],
            "model": long["model"].map(lambda v: _display("model", v)),
            "comparison": comparison,
            "mean diff [95% CI]": [
                f"{fmt(m * s)} [{fmt(lo * s)}, {fmt(hi * s)}]"
                for m, lo, hi, s in zip(long["mean_diff"], long["ci_low"], long["ci_high"], scale)
            ],
            "d_z": long["cohen_dz"].map(lambda v: f"{v:+.2f}"),
            "p (paired t)": long["p_t"].map(lambda v: f"{v:.3g}"),
            "p Holm": long["p_holm"].map(lambda v: f"{v:.3g}"),
            "p sign-flip": long["p_signflip"].map(lambda v: f"{v:.3g}"),
            "seeds": long["n_pairs"],
            "better & significant": np.where(long["improved"] & long["significant"], "yes", "no"),
        }
    )
    return wide, long.reset_index(drop=True)


# ------------------------------------------------ beyond the paper: controls, T, selective

# Table 3's rows for the controls: the human soft label, the two controls, the hard majority as the floor
CONTROL_ROWS = (PRIMARY_SOFT, *CONTROL_TARGETS, "human_majority")


# Deliberately not MetricView: its fields look alike, but a View is one block of a table, not a table.
@dataclass(frozen=True)
class View:
    """One block of a post-hoc table: a metric on an evaluation set, in some strata."""

    metric: str
    eval_set: str
    label: str
    strata: tuple[str, ...]
    percent: bool = False
    decimals: int = 3


TEMPERATURE_VIEWS = (
    View("accuracy", "human", "accuracy % (human majority)", ("all", "NoHLV", "HLV"), percent=True, decimals=2),
    View("kl", "human_soft", "KL (human soft label)", ("all", "NoHLV", "HLV")),
    View("brier", "human_soft", "Brier (human soft label)", ("all", "NoHLV", "HLV")),
    View("ece", "human", "ECE (human majority)", ("all", "NoHLV", "HLV")),
)
SELECTIVE_VIEWS = (
    View("aurc", "human", "AURC", ("all", "NoHLV", "HLV"), decimals=4),
    View("eaurc", "human", "E-AURC", ("all", "NoHLV", "HLV"), decimals=4),
    View("hlv_auroc", "human", "HLV AUROC of predictive entropy", ("all",)),
    View("entropy_spearman", "human_soft", "Spearman rho, predictive vs human entropy", ("all",)),
)
T_LABEL = "T (fitted on val)"


def views_long(summary: pd.DataFrame, views: tuple[View, ...], split: str = "test") -> pd.DataFrame:
    """The posthoc seed-summary rows of `views`, with the view's label as `view` and its cell text."""
    parts = []
    for v in views:
        rows = summary[
            (summary["metric"] == v.metric)
            & (summary["eval_set"] == v.eval_set)
            & summary["stratum"].isin(v.strata)
            & (summary["split"] == split)
        ]
        cells = [
            mean_std(m, s, n, percent=v.percent, decimals=v.decimals)
            for m, s, n in zip(rows["mean"], rows["std"], rows["n_seeds"])
        ]
        parts.append(rows.assign(view=v.label, cell=cells))
    columns = list(summary.columns) + ["view", "cell"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def views_table(long: pd.DataFrame, views_order: list[str], order: dict[str, list]) -> pd.DataFrame:
    """Rows (corpus, view, stratum, target), columns (model, before/after T)."""
    order = order | {"view": views_order, "stratum": ["all", "NoHLV", "HLV"], "calibration": list(CALIBRATION_NAMES)}
    wide = layout(long, long["cell"], ("corpus", "view", "stratum", "target"), ("model", "calibration"), order)
    return wide.rename(columns={"view": "metric"})


def table_controls(summary: pd.DataFrame, tests: pd.DataFrame, order: dict[str, list], split: str = "test"):
    """Table 3's layout (KL(human || model), NoHLV and HLV, before T) with the controls as rows.

    A control's cell is marked * where human_uncertainty's KL is significantly lower than that
    control's (controls family, Holm). Targets not trained have no row."""
    long = summary[
        (summary["metric"] == "kl")
        & (summary["eval_set"] == "human_soft")
        & summary["stratum"].isin(["NoHLV", "HLV"])
        & (summary["split"] == split)
        & summary["target"].isin(CONTROL_ROWS)
    ]
    if "calibration" in long:
        long = long[long["calibration"] == "none"]
    beaten = set()
    if len(tests) and "family" in tests:
        t = tests[
            (tests["family"] == "controls")
            & (tests["metric"] == "kl")
            & (tests["eval_set"] == "human_soft")
            & (tests["calibration"] == "none")
            & (tests["split"] == split)
            & (tests["treatment"] == PRIMARY_SOFT)
            & tests["improved"]
            & tests["significant"]
        ]
        beaten = set(zip(t["corpus"], t["model"], t["stratum"], t["control"]))
    long = long.assign(
        beaten=[
            (c, m, st, tg) in beaten
            for c, m, st, tg in zip(long["corpus"], long["model"], long["stratum"], long["target"])
        ]
    )
    cells = pd.Series(
        [
            mean_std(m, s, n, percent=False, decimals=3) + (" *" if b else "")
            for m, s, n, b in zip(long["mean"], long["std"], long["n_seeds"], long["beaten"])
        ],
        dtype=object,
    )
    order = order | {"target": [t for t in CONTROL_ROWS if t in order["target"]], "stratum": ["NoHLV", "HLV"]}
    wide = layout(long, cells, ("corpus", "target"), ("model", "stratum"), order)
    return wide, long.reset_index(drop=True)


def table_temperature(summary: pd.DataFrame, temperature: pd.DataFrame, order: dict[str, list], split: str = "test"):
    """Accuracy, KL, Brier, ECE per stratum before and after temperature scaling, and the fitted T."""
    from softdigits.evaluation.stats import seed_summary

    long = views_long(summary, TEMPERATURE_VIEWS, split)
    fitted = seed_summary(temperature, ["corpus", "model", "target"], value="temperature")
    fitted = fitted.assign(
        view=T_LABEL,
        stratum="all",
        calibration="temperature",
        metric="temperature",
        eval_set="val",
        split="val",
        cell=[
            mean_std(m, s, n, percent=False, decimals=3)
            for m, s, n in zip(fitted["mean"], fitted["std"], fitted["n_seeds"])
        ],
    )
    long = pd.concat([long, fitted[long.columns]], ignore_index=True)
    wide = views_table(long, [v.label for v in TEMPERATURE_VIEWS] + [T_LABEL], order)
    return wide, long.drop(columns="cell")


def table_selective(summary: pd.DataFrame, order: dict[str, list], split: str = "test"):
    """AURC and E-AURC per stratum, HLV AUROC and entropy Spearman, before and after T."""
    long = views_long(summary, SELECTIVE_VIEWS, split)
    wide = views_table(long, [v.label for v in SELECTIVE_VIEWS], order)
    return wide, long.drop(columns="cell")


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
    ours = summary[
        (summary["metric"] == "accuracy")
        & summary["eval_set"].isin(["orig", "human"])
        & (summary["stratum"] == "all")
        & (summary["split"] == split)
    ]
    keys = ["corpus", "target", "model", "eval_set"]
    long = ours[keys + ["mean", "std", "n_seeds"]].merge(
        paper[keys + ["mean_pct", "std_pct"]].rename(
            columns={"mean_pct": "paper_mean_pct", "std_pct": "paper_std_pct"}
        ),
        on=keys,
        how="left",
    )
    long = long.assign(mean_pct=long["mean"] * 100, std_pct=long["std"] * 100).drop(columns=["mean", "std"])
    long["diff_pp"] = long["mean_pct"] - long["paper_mean_pct"]
    long = long[keys + ["mean_pct", "std_pct", "n_seeds", "paper_mean_pct", "paper_std_pct", "diff_pp"]]
    cells = []
    for r in long.itertuples():
        this = mean_std(r.mean_pct, r.std_pct, r.n_seeds, percent=False, decimals=2)
        theirs = mean_std(r.paper_mean_pct, r.paper_std_pct, 2, percent=False, decimals=2)
        diff = f"{r.diff_pp:+.2f}" if np.isfinite(r.diff_pp) else ""
        cells += [(r, "this run", this), (r, "paper", theirs), (r, "Δ pp", diff)]
    frame = pd.DataFrame(
        [{k: getattr(r, k) for k in keys} | {"source": src} for r, src, _ in cells], columns=keys + ["source"]
    )
    text = pd.Series([c for _, _, c in cells], dtype=object)
    order = order | {"eval_set": ["orig", "human"], "source": ["this run", "paper", "Δ pp"]}
    wide = layout(frame, text, ("corpus", "eval_set", "target"), ("model", "source"), order)
    return wide, long.reset_index(drop=True)


AGREEMENT = {"holds": "agrees", "fails": "differs", "inconclusive": "inconclusive"}


def agreement(rho: float, n: int, expected: str, *, negligible_rho: float) -> str:
    """agrees / differs / inconclusive with the paper's statement, by the 95% interval of rho
    (evaluation.conditions: negative / positive exclude 0 on that side; negligible lies
    inside (-negligible_rho, negligible_rho), an equivalence test)."""
    low, high = spearman_interval(rho, int(n)) if np.isfinite(rho) else (np.nan, np.nan)
    return AGREEMENT[correlation_outcome(low, high, expected, negligible_rho)]


def table4_vs_paper(
    spearman: pd.DataFrame,
    paper: pd.DataFrame,
    order: dict[str, list],
    *,
    alpha: float,
    negligible_rho: float,
    stratum: str = "all",
):
    """This run's Table 4 correlations against what the paper's §3.4 states for each cell."""
    ours = spearman[spearman["stratum"] == stratum]
    long = ours.merge(paper[PAPER_TABLE4_COLUMNS], on=["corpus", "target", "variable"], how="inner")
    long["agreement"] = [
        agreement(r, n, e, negligible_rho=negligible_rho) for r, n, e in zip(long["rho"], long["n"], long["expected"])
    ]
    long = long[
        [
            "corpus",
            "model",
            "uncertainty",
            "target",
            "variable",
            "rho",
            "p_permutation",
            "n",
            "expected",
            "agreement",
            "statement",
        ]
    ].reset_index(drop=True)
    cells = pd.Series(
        [f"{r:+.3f} ({a})" if np.isfinite(r) else "not computed" for r, a in zip(long["rho"], long["agreement"])],
        dtype=object,
    )
    order = order | {
        "uncertainty": ["u_mean", "u_prop"],
        "variable": ["confidence", "variability"],
        "expected": list(EXPECTATIONS),
    }
    wide = layout(long, cells, ("corpus", "target", "variable", "expected"), ("model", "uncertainty"), order)
    return wide.rename(columns={"expected": "paper (§3.4)"}), long


def write_table_files(
    wide: pd.DataFrame, long: pd.DataFrame, paths: dict[str, str | os.PathLike], *, title: str, labels: str, notes: str
) -> None:
    """Markdown (title, human-labels sentence, table, notes), CSV in layout, long-form Parquet."""
    write_text(f"# {title}\n\n{labels}\n\n{markdown_table(wide)}\n{notes}\n", paths["md"])
    write_csv(wide, paths["csv"])
    write_table(long, paths["parquet"], metadata={"title": title, "human_labels": labels})


def table_paths(folder: str | os.PathLike, name: str) -> dict[str, Path]:
    return {ext: Path(folder) / f"{name}.{ext}" for ext in ("md", "csv", "parquet")}


def not_run_note(targets: list[str]) -> str:
    """The controls that training.targets lacks, said in the controls table's note."""
    missing = [t for t in CONTROL_TARGETS if t not in targets]
    return f"Not run (not in training.targets, so no row): {', '.join(missing)}." if missing else ""


# ------------------------------------------------------------------ the registry


class TableInputs:
    """What a table is built from: the evaluation's long-form files (read on first use, so a
    table job reads only what its table needs), the key order and the settings."""

    def __init__(self, paths: dict[str, str], order: dict[str, list], *, alpha, negligible_rho, data_map_gold):
        self.paths, self.order = paths, order
        self.alpha, self.negligible_rho, self.data_map_gold = alpha, negligible_rho, data_map_gold

    # One lazily read file per property, deliberately alike (a table names what it reads).
    @functools.cached_property
    def summary(self) -> pd.DataFrame:
        return pd.read_parquet(self.paths["summary"])

    @functools.cached_property
    def spearman(self) -> pd.DataFrame:
        return pd.read_parquet(self.paths["spearman"])

    @functools.cached_property
    def tests(self) -> pd.DataFrame:
        return pd.read_parquet(self.paths["tests"])

    @functools.cached_property
    def posthoc(self) -> pd.DataFrame:
        return pd.read_parquet(self.paths["posthoc_summary"])

    @functools.cached_property
    def temperature(self) -> pd.DataFrame:
        return pd.read_parquet(self.paths["temperature"])

    def paper(self, name: str, columns: list[str]) -> pd.DataFrame:
        return read_paper_table(self.paths[name], columns)


@dataclass(frozen=True)
class TableSpec:
    """One table: its title, how it is built, the note under it, its report caption and section.

    `note` and `caption` are format strings: {gold} (the data maps' gold rule), {alpha},
    {negligible_rho}, {not_run} (controls not trained) and, in captions, {config[...]}."""

    title: str
    build: Callable[[TableInputs], tuple[pd.DataFrame, pd.DataFrame]]  # -> (paper layout, long-form rows)
    note: str
    caption: str  # reStructuredText
    section: str  # one of SECTIONS


SECTIONS = {
    "paper": "Paper tables",
    "tests": "Paired tests",
    "beyond": "Controls and post-hoc views (beyond the paper)",
}

TABLES = {
    "table2": TableSpec(
        "Table 2: test accuracy (%) by evaluation set and human-label-variation stratum",
        MetricView(
            "accuracy",
            ("orig", "human"),
            ("NoHLV", "HLV"),
            ("corpus", "eval_set", "target"),
            ("model", "stratum"),
            percent=True,
            decimals=2,
        ),  # fmt: skip
        note="Mean±std over seeds (sample std). original labels: the corpus's own label (synthetic "
        "for Mukhoti); human majority: the majority vote of the annotators (not-a-digit as set "
        "by training.not_a_digit).",
        caption="""**Table 2**: test accuracy (%, mean±std over seeds, sample std) of each model (columns) and
training target (rows), on two evaluation sets: the corpus's *original labels* (one-hot for
MNIST, the synthetic label of Ambiguous-MNIST) and the *human majority* vote, split by
human label variation (NoHLV: all annotators agree; HLV: they do not). Images whose human
majority is "not a digit" follow ``training.not_a_digit`` = {config[training][not_a_digit]}
(renormalise: kept, and wrong against the human majority, since the model has 10 outputs;
exclude: left out of every evaluation set).""",
        section="paper",
    ),
    "table3": TableSpec(
        "Table 3: KL(human || model) in nats on the test set, by stratum",
        MetricView("kl", ("human_soft",), ("NoHLV", "HLV"), ("corpus", "target"), ("model", "stratum")),
        note="Mean±std over seeds. KL(human || model) in nats against the human soft label with its "
        "not-a-digit mass dropped and the digits renormalised; 0·log 0 = 0; model probabilities "
        "clipped at evaluation.kl_epsilon and renormalised.",
        caption="""**Table 3**: KL(human || model) in nats on the test set (mean±std over seeds), NoHLV and
HLV strata. The human distribution is ``{config[evaluation][human_soft_label]}``
with its not-a-digit mass dropped and the ten digits renormalised (as for a 10-output
model; images with no digit mass are left out); 0·log 0 = 0; model probabilities clipped
below at {config[evaluation][kl_epsilon]} and renormalised. Lower is better.""",
        section="paper",
    ),
    "table4": TableSpec(
        "Table 4: Spearman correlation of human uncertainty with model confidence and variability (model data maps)",
        lambda data: spearman_table(data.spearman, data.order),
        note="Spearman rho over the training images of the model data maps (last epochs of all seeds; "
        "{gold}); p: two-sided permutation p-value (ranks permuted; ties as average ranks).",
        caption="""**Table 4**: Spearman correlation of human uncertainty (u_mean: mean share of "unsure"
answers; u_prop: share of annotators unsure at least once) with model confidence and
variability from the model data maps (last {config[evaluation][data_map_last_epochs]}
epochs of every seed), over the training images; {gold}.
p: two-sided permutation p-value ({config[evaluation][spearman_permutations]}
permutations of the ranks; ties are many, so no t-approximation). Negative rho with
confidence means the model is less confident where humans are uncertain.""",
        section="paper",
    ),
    "table9": TableSpec(
        "Table 9: overall test accuracy (%) on both evaluation sets",
        MetricView(
            "accuracy",
            ("orig", "human"),
            ("all",),
            ("corpus", "target"),
            ("model", "eval_set"),
            percent=True,
            decimals=2,
        ),  # fmt: skip
        note="Mean±std over seeds, all test images.",
        caption="""**Table 9**: overall test accuracy (%, mean±std over seeds, all test images) of each model
on the original-label and human-majority evaluation sets.""",
        section="paper",
    ),
    "table10": TableSpec(
        "Table 10: multiclass Brier score (summed over classes) on the test set, by stratum",
        MetricView(
            "brier",
            ("orig", "human", "human_soft"),
            ("NoHLV", "HLV"),
            ("corpus", "eval_set", "target"),
            ("model", "stratum"),
        ),  # fmt: skip
        note="Mean±std over seeds. Brier = sum over classes of (p_model − p_reference)²; against the "
        "human majority the model's not-a-digit probability is 0.",
        caption="""**Table 10**: multiclass Brier score, sum over classes of (p_model − p_reference)², in [0, 2],
on the test set (mean±std over seeds), NoHLV and HLV strata, against three references: the
original labels (distribution), the human majority (one-hot over 10 digits + not a digit,
the model's not-a-digit probability being 0) and the human soft label (digits renormalised).
Lower is better.""",
        section="paper",
    ),
    "table_ece": TableSpec(
        "Extra table: expected calibration error (15 bins) on the test set",
        MetricView(
            "ece", ("human", "orig"), ("all", "NoHLV", "HLV"), ("corpus", "eval_set", "target"), ("model", "stratum")
        ),  # fmt: skip
        note="Mean±std over seeds. Equal-width bins of top-class probability; secondary metric (ECE "
        "only looks at the top class).",
        caption="""**Extra table: ECE** ({config[evaluation][ece_bins]} equal-width bins of the
top-class probability) on the test set, mean±std over seeds, against the human majority
(and the original labels). A secondary metric: ECE only looks at the top class, not at the
whole distribution that human label variation is about.""",
        section="paper",
    ),
    "paired_tests": TableSpec(
        "Paired-by-seed tests of the paper's target comparisons, the controls and temperature scaling",
        lambda data: tests_table(data.tests, data.order),
        note="Paired by seed: treatment − control per seed. Primary test: two-sided paired t-test; "
        "Holm correction within each family × corpus × split × metric × evaluation set × calibration, "
        "so across the models, strata and comparisons of that cell "
        "(families: paper = evaluation.comparisons; controls = evaluation.control_comparisons; "
        "temperature = every target after − before temperature scaling); sign-flip: exact "
        "permutation test as a distribution-free check (its minimum with 6 seeds is 1/32). "
        "d_z = mean difference / sd of differences. Accuracy differences in percentage points. "
        "Shown: the headline cells; the Parquet file evaluation/paired_tests.parquet holds every "
        "test (all metrics, strata, the disagreement views).",
        caption="""**Paired-by-seed tests** in three families, each Holm-corrected on its own: *paper*, the
comparisons the paper states (soft vs majority, soft vs original, equal vs uncertainty
weighted); *controls*, ``human_uncertainty`` vs ``label_smoothing`` and vs ``human_shuffled``
(only those trained); *temperature*, every target after vs before temperature scaling.
Shown per corpus, model and stratum: accuracy (human majority), KL and Brier (human soft
label) and AURC before T, KL and Brier after T, and the after − before differences (with
ECE and AURC). Difference = treatment − control per seed (accuracy in points). Primary
test: two-sided paired t-test, Holm-corrected within each family × corpus × split × metric ×
evaluation set × calibration, so across the models, strata and comparisons of that cell (alpha
{alpha});
the exact sign-flip permutation test is a distribution-free check (its smallest p with
6 seeds is 1/32). Effect sizes: mean difference with 95% CI and Cohen's d_z.""",
        section="tests",
    ),
    "table9_vs_paper": TableSpec(
        "Table 9 against the paper: overall test accuracy (%)",
        lambda data: table9_vs_paper(data.summary, data.paper("paper_table9", PAPER_TABLE9_COLUMNS), data.order),
        note="This run: mean±std over its seeds, all test images. Paper: the published Table 9 "
        "(human annotators, 6 seeds), transcribed in resources/evaluation/paper_table9.csv; its "
        "soft-label rows 3 and 4 are assumed to be human_equal and human_uncertainty (see "
        "resources/evaluation/README.md). Δ pp = this run − paper, in accuracy points.",
        caption="""**Table 9 against the paper**: this run's overall test accuracy (%, mean±std over its seeds)
on the original-label and human-majority evaluation sets, beside the paper's published
Table 9 (real human annotators, 6 seeds; transcribed into
``resources/evaluation/paper_table9.csv``, where the source and the assumed order of the two
soft-label rows are noted) and the difference in accuracy points. The paper's are real human
annotations of the DDU release; where this run's labels are simulated, or its
Ambiguous-MNIST is regenerated, a difference says how far this offline setup is from the
paper's, not whether the paper's numbers are right.""",
        section="paper",
    ),
    "table4_vs_paper": TableSpec(
        "Table 4 against the paper: Spearman rho of human uncertainty with model confidence and variability, "
        "and what the paper states",
        lambda data: table4_vs_paper(
            data.spearman,
            data.paper("paper_table4", PAPER_TABLE4_COLUMNS),
            data.order,
            alpha=data.alpha,
            negligible_rho=data.negligible_rho,
        ),
        note="The paper's Table 4 numbers are lost from its text, so each cell is compared with what "
        "§3.4 states (resources/evaluation/paper_table4.csv), by the 95% Fisher z interval of rho "
        "(variance 1.06 / (n − 3)): negative / positive agrees when the interval excludes 0 on that "
        "side and differs when it excludes 0 on the other; negligible agrees when the interval lies "
        "inside (−{negligible_rho}, {negligible_rho}) and differs when it lies outside; anything "
        "else is inconclusive. Correlations over all training images of the model data maps ({gold}).",
        caption="""**Table 4 against the paper**: this run's Spearman rho of human uncertainty with model
confidence and variability (all training images of the model data maps; {gold}), beside
what the paper's §3.4 states for that cell. The paper's Table 4 numbers are missing from its
text, so the comparison is with its stated directions (``resources/evaluation/paper_table4.csv``),
by the 95% interval of rho: negative / positive agrees when it excludes 0 on that side, differs
when it excludes 0 on the other; negligible agrees when it lies inside (−{negligible_rho},
{negligible_rho}) and differs when it lies outside; anything else is inconclusive. The paper's are
real human annotations.""",
        section="paper",
    ),
    "table_controls": TableSpec(
        "Controls (beyond the paper): KL(human || model) in nats on the test set, by stratum, "
        "Table 3's layout with the control targets as rows",
        lambda data: table_controls(data.posthoc, data.tests, data.order),
        note="Mean±std over seeds, before temperature scaling. KL(human || model) in nats, as in "
        "Table 3. label_smoothing: the one-hot human majority smoothed uniformly with the epsilon "
        "that matches the mean train entropy of human_uncertainty (softness without "
        "image-specific information); human_shuffled: the human_uncertainty labels permuted "
        "among train images of the same majority class (the label distribution without the "
        "image pairing). * = human_uncertainty's KL is lower with Holm-adjusted paired t-test "
        "p < {alpha} (controls family). {not_run}",
        caption="""**Controls (beyond the paper)**: KL(human || model) in nats on the test set (mean±std over
seeds, before temperature scaling), NoHLV and HLV strata, in Table 3's layout with the
control targets as rows. ``label_smoothing`` keeps the human label's softness (its epsilon
matches the mean train entropy of ``human_uncertainty``) without any image-specific
information; ``human_shuffled`` keeps the human label distribution within each majority
class without the pairing of label and image. * marks a control whose KL is higher than
``human_uncertainty``'s with Holm-adjusted paired t-test p < {alpha}
(the ``controls`` family of the paired tests). Training targets of this run:
{config[training][targets]}; a control not among them has no row.""",
        section="beyond",
    ),
    "table_temperature": TableSpec(
        "Temperature scaling (beyond the paper): test metrics before and after T, by stratum, and the fitted T",
        lambda data: table_temperature(data.posthoc, data.temperature, data.order),
        note="Mean±std over seeds. One temperature T per run, fitted on the val split by NLL against "
        "the targets the run was trained on (bounded search over log T in [0.01, 100]); before "
        "T = the saved predictions, after T = softmax(log p / T). Accuracy can only change "
        "through ties (T keeps each image's argmax). Per-run T and fit diagnostics: "
        "evaluation/temperature.parquet; after − before paired tests: paired_tests (family "
        "temperature).",
        caption="""**Temperature scaling (beyond the paper)**: accuracy against the human majority, KL and
Brier against the human soft label, and ECE, per stratum, before and after post-hoc
temperature scaling (mean±std over seeds), and the fitted T. One scalar T per run, fitted on
the val split by NLL against the targets that run was trained on; it keeps every image's
argmax, so it can change calibration and KL but not accuracy. Whether it closes the HLV KL
gap between hard-label and soft-label models: the paired tests with calibration "after T".""",
        section="beyond",
    ),
    "table_selective": TableSpec(
        "Selective prediction and disagreement detection (beyond the paper): AURC, E-AURC by stratum, "
        "HLV AUROC and entropy Spearman on the test set",
        lambda data: table_selective(data.posthoc, data.order),
        note="Mean±std over seeds. Confidence = top-class probability; error = disagreement with the "
        "human majority (a not-a-digit majority is an error). AURC = mean risk over the n "
        "coverages (lower is better); E-AURC = AURC − the oracle ranking's AURC; tied "
        "confidences take their expected risk. HLV AUROC: the predictive entropy telling HLV "
        "from NoHLV test images (0.5 = chance); Spearman rho between the predictive entropy and "
        "the human soft label's entropy. A view that is undefined for a run is left out.",
        caption="""**Selective prediction and disagreement detection (beyond the paper)**: AURC and E-AURC per
stratum (confidence = top-class probability, error = disagreement with the human majority;
lower is better), the AUROC of the model's predictive entropy for telling HLV from NoHLV test
images, and Spearman's rho between the predictive entropy and the human label entropy;
mean±std over seeds, before and after temperature scaling.""",
        section="beyond",
    ),
}


def fill(template: str, *, config: dict | None = None, data_map_gold: str, alpha, negligible_rho, targets) -> str:
    """A note or caption with its fields filled (see TableSpec)."""
    from softdigits.evaluation.dynamics import GOLD_NOTES

    return template.format(
        config=config or {},
        gold=GOLD_NOTES[data_map_gold],
        alpha=alpha,
        negligible_rho=negligible_rho,
        not_run=not_run_note(targets),
    )


def write_evaluation_table(name: str, data: TableInputs, studies: dict[str, str], outputs: dict[str, str]) -> None:
    """Rule table_results: build one table of the registry and write it (outputs: md, csv, parquet)."""
    from softdigits.study_table import labels_sentence, study_origins

    spec = TABLES[name]
    wide, long = spec.build(data)
    notes = fill(
        spec.note,
        data_map_gold=data.data_map_gold,
        alpha=data.alpha,
        negligible_rho=data.negligible_rho,
        targets=data.order["target"],
    )
    labels = labels_sentence(study_origins(studies))
    write_table_files(wide, long, outputs, title=spec.title, labels=labels, notes=notes)
