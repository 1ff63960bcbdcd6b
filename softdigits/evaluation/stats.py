"""Statistics over seeds: mean +- std, paired-by-seed tests, Holm correction, effect sizes.

Choices (stated in the README and the table captions):
- Spread over seeds is the sample standard deviation (ddof 1), the usual
  "mean +- std over n runs" of the paper's tables.
- Runs of two targets with the same seed share initialisation and batch order,
  so comparisons are paired by seed. The primary test is the two-sided paired
  t-test on the per-seed differences: with 6 seeds the exact sign-flip
  (permutation) test and the Wilcoxon signed-rank test cannot give p below
  1/32 = 0.03125, which no comparison could pass after any multiple-comparison
  correction. The exact sign-flip test (no normality assumption) is reported
  beside it as a check.
- Holm's step-down correction controls the family-wise error within each
  family (one family per corpus x metric x evaluation set: a block of a paper
  table, across models, strata and comparisons). The comparisons beyond the
  paper (the controls, before vs after temperature scaling, and every
  comparison after T) are families of their own (all_paired_tests), so adding
  them never changes a p-value of the paper's comparisons.
- Effect sizes: the mean paired difference with its 95% t interval, and
  Cohen's d_z = mean difference / sd of the differences.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pandas as pd

from softdigits.evaluation.metrics import higher_is_better

STD_DDOF = 1
MAX_EXACT_SIGNFLIP = 16  # 2^16 sign patterns; more seeds use random sign flips


def seed_summary(df: pd.DataFrame, by: list[str], value: str = "value") -> pd.DataFrame:
    """Mean, sample std (ddof 1) and number of seeds of `value` per group."""
    g = df.groupby(by, sort=True, dropna=False)[value]
    out = g.agg(mean="mean", std=lambda v: v.std(ddof=STD_DDOF), n_seeds="count").reset_index()
    return out


@functools.cache
def _sign_patterns(n: int) -> np.ndarray:
    """All 2^n sign patterns (read-only; built once per n: thousands of tests share them)."""
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    signs.flags.writeable = False
    return signs


def signflip_pvalue(diff: np.ndarray, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p-value of the mean paired difference.

    Exact (all 2^n sign patterns) for n <= 16, else 2^16 random patterns.
    """
    diff = np.asarray(diff, dtype=np.float64)
    n = len(diff)
    if n <= MAX_EXACT_SIGNFLIP:
        signs = _sign_patterns(n)
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(2**MAX_EXACT_SIGNFLIP, n))
    observed = abs(diff.mean())
    flipped = np.abs(signs @ diff / n)
    return float(np.mean(flipped >= observed - 1e-12 * max(1.0, observed)))


def paired_test(treatment: np.ndarray, control: np.ndarray) -> dict:
    """Paired comparison of two per-seed samples (same order of seeds)."""
    a, b = np.asarray(treatment, dtype=np.float64), np.asarray(control, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    diff = a - b
    n = len(diff)
    out = {"n_pairs": n, "mean_diff": float(diff.mean()) if n else np.nan}
    if n < 2:
        return out | {
            "sd_diff": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "t": np.nan,
            "p_t": np.nan,
            "p_signflip": np.nan,
            "cohen_dz": np.nan,
        }
    sd = float(diff.std(ddof=1))
    if sd == 0:
        # Every seed moved by the same amount: no variance to test against.
        # Zero difference -> p = 1; a constant non-zero difference -> p = 0 (t is infinite).
        p = 1.0 if out["mean_diff"] == 0 else 0.0
        t = 0.0 if out["mean_diff"] == 0 else np.copysign(np.inf, out["mean_diff"])
        dz = 0.0 if out["mean_diff"] == 0 else np.copysign(np.inf, out["mean_diff"])
        half = 0.0
    else:
        # here, not at the top: rules/common.smk imports this module, and scipy.stats adds about
        # a second to every Snakemake start
        from scipy import stats as sps

        se = sd / np.sqrt(n)
        t = out["mean_diff"] / se
        p = float(2 * sps.t.sf(abs(t), df=n - 1))
        dz = out["mean_diff"] / sd
        half = float(sps.t.ppf(0.975, df=n - 1) * se)
    return out | {
        "sd_diff": sd,
        "ci_low": out["mean_diff"] - half,
        "ci_high": out["mean_diff"] + half,
        "t": float(t),
        "p_t": p,
        "p_signflip": signflip_pvalue(diff),
        "cohen_dz": float(dz),
    }


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN stays NaN and does not count in the family)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


FAMILY = ["corpus", "split", "metric", "eval_set"]


def paired_comparisons(
    metrics: pd.DataFrame, comparisons: list[tuple[str, str]], *, alpha: float, by: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Paired-by-seed tests of treatment vs control targets for every metric cell.

    `metrics` is long-form (corpus, model, target, seed, split, eval_set,
    stratum, metric, value, and the extra key columns `by`, e.g. calibration).
    Only seeds that both targets have are paired; a comparison naming a target
    the frame lacks (not trained) is skipped. Holm correction within each
    FAMILY (+ `by`); `improved` says whether the treatment is better on average
    in the metric's own direction.
    """
    cell = ["corpus", "model", "split", "eval_set", "stratum", "metric", *by]
    rows = []
    # one pivot (seeds x targets per cell), not one per cell: thousands of cells after T
    wide = metrics.pivot_table(index=cell + ["seed"], columns="target", values="value", aggfunc="first")
    comparisons = [(t, c) for t, c in comparisons if t in wide and c in wide]
    column = {target: i for i, target in enumerate(wide.columns)}
    for key, by_target in wide.groupby(level=cell, sort=True):
        values = by_target.to_numpy()  # numpy inside the loop: pandas per group is the slow part
        for treatment, control in comparisons:
            pair = values[:, [column[treatment], column[control]]]
            if np.isnan(pair).all(axis=0).any():
                continue  # a target without runs in this cell
            pair = pair[~np.isnan(pair).any(axis=1)]
            res = paired_test(pair[:, 0], pair[:, 1])
            rows.append(dict(zip(cell, key)) | {"treatment": treatment, "control": control} | res)
    return _holm_columns(
        pd.DataFrame(rows, columns=cell + ["treatment", "control"] + TEST_COLUMNS), FAMILY + list(by), alpha
    )


TEST_COLUMNS = ["n_pairs", "mean_diff", "sd_diff", "ci_low", "ci_high", "t", "p_t", "p_signflip", "cohen_dz"]


def _holm_columns(tests: pd.DataFrame, family: list[str], alpha: float) -> pd.DataFrame:
    """p_holm (within each `family` group), significant, improved (in the metric's direction)."""
    if tests.empty:
        return tests.assign(p_holm=[], significant=[], improved=[])
    tests["p_holm"] = tests.groupby(family)["p_t"].transform(lambda p: holm(p.to_numpy()))
    tests["significant"] = tests["p_holm"] < alpha
    sign = tests["metric"].map(lambda m: 1.0 if higher_is_better(m) else -1.0)
    tests["improved"] = sign * tests["mean_diff"] > 0
    return tests


# ------------------------------------------- post-hoc views: controls and temperature

AFTER_T = "after T − before"  # the calibration label of a before/after temperature-scaling test
POSTHOC_KEYS = ["corpus", "model", "target", "seed", "split", "calibration", "eval_set", "stratum", "metric", "value"]
# the reference each disagreement view is scored against
DISAGREEMENT_EVAL_SET = {"hlv_auroc": "human", "entropy_spearman": "human_soft"}


def posthoc_long(
    metrics: pd.DataFrame, metrics_temperature: pd.DataFrame, selective: pd.DataFrame, disagreement: pd.DataFrame
) -> pd.DataFrame:
    """Every per-run number of the evaluation in one long frame with a `calibration` column
    (none / temperature): the metrics before and after temperature scaling, AURC and E-AURC
    (errors against the human majority: eval_set human) and the disagreement views
    (whole test set: stratum all)."""
    parts = [
        metrics.assign(calibration="none"),
        metrics_temperature.assign(calibration="temperature"),
        selective.assign(eval_set="human"),
        disagreement.assign(stratum="all", eval_set=disagreement["metric"].map(DISAGREEMENT_EVAL_SET)),
    ]
    return pd.concat([p[POSTHOC_KEYS] for p in parts], ignore_index=True)


def temperature_comparisons(long: pd.DataFrame, *, alpha: float) -> pd.DataFrame:
    """Every target after vs before temperature scaling, paired by seed, per metric cell.

    treatment = control = the target; calibration = AFTER_T; mean_diff = after − before.
    Holm within each FAMILY (models, strata and targets of a corpus x split x metric x eval set).
    """
    cell = ["corpus", "model", "split", "eval_set", "stratum", "metric", "target"]
    rows = []
    columns = cell[:-1] + ["calibration", "treatment", "control"] + TEST_COLUMNS
    wide = long.pivot_table(index=cell + ["seed"], columns="calibration", values="value", aggfunc="first")
    if "none" not in wide or "temperature" not in wide:
        return _holm_columns(pd.DataFrame(rows, columns=columns), FAMILY, alpha)
    for key, by_cal in wide[["temperature", "none"]].groupby(level=cell, sort=True):
        pair = by_cal.to_numpy()
        if np.isnan(pair).all(axis=0).any():
            continue
        pair = pair[~np.isnan(pair).any(axis=1)]
        res = paired_test(pair[:, 0], pair[:, 1])
        row = dict(zip(cell, key))
        rows.append(row | {"calibration": AFTER_T, "treatment": row["target"], "control": row["target"]} | res)
    return _holm_columns(pd.DataFrame(rows, columns=columns), FAMILY, alpha)


def all_paired_tests(
    long: pd.DataFrame, *, paper: list[tuple[str, str]], controls: list[tuple[str, str]], alpha: float
) -> pd.DataFrame:
    """The paired_tests file: three Holm families kept apart, so adding one never moves another's p.

    - paper: the paper's comparisons (evaluation.comparisons), before and after T;
    - controls: human_uncertainty vs the controls (evaluation.control_comparisons), before and after T;
    - temperature: every target after vs before temperature scaling.
    Rows of a target that was not trained do not exist (skipped, not NaN).
    """
    frames = [
        paired_comparisons(long, paper, alpha=alpha, by=("calibration",)).assign(family="paper"),
        paired_comparisons(long, controls, alpha=alpha, by=("calibration",)).assign(family="controls"),
        temperature_comparisons(long, alpha=alpha).assign(family="temperature"),
    ]
    columns = (
        ["family", "corpus", "model", "split", "calibration", "eval_set", "stratum", "metric", "treatment", "control"]
        + TEST_COLUMNS
        + ["p_holm", "significant", "improved"]
    )
    out = pd.concat([f[columns] for f in frames if len(f)] or [pd.DataFrame(columns=columns)], ignore_index=True)
    # typed even when empty (no comparison had both targets), so readers can test p_holm
    floats = [c for c in TEST_COLUMNS + ["p_holm"] if c != "n_pairs"]
    return out.astype({**{c: "float64" for c in floats}, "n_pairs": "int64", "significant": bool, "improved": bool})


SUMMARY_KEYS = ["corpus", "model", "target", "split", "eval_set", "stratum", "metric"]


# The per-corpus outputs of evaluate_runs beyond metrics and reliability that evaluate_summary
# merges (risk_coverage stays per corpus: only its figure reads it).
POSTHOC_VIEWS = ("temperature", "metrics_temperature", "selective", "disagreement")


def summarise_evaluation(
    inputs: dict[str, list],
    outputs: dict[str, str],
    *,
    comparisons: list[tuple[str, str]],
    control_comparisons: list[tuple[str, str]],
    alpha: float,
) -> None:
    """Merge per-corpus evaluation files into one each; write the seed summaries and paired tests.

    `inputs`: metrics, reliability, jsd, data_map, spearman and the post-hoc views
    (POSTHOC_VIEWS) -> file lists; `outputs`: the same names (data_map -> data_maps)
    plus summary (the metrics, as before), posthoc_summary (every view with its
    calibration, see posthoc_long) and tests (all_paired_tests).
    The merged files' metadata keep every corpus's labels origin.
    """
    from softdigits.io import read_metadata, write_table

    merged, origins = {}, {}
    for name, paths in inputs.items():
        frames = []
        for path in paths:
            frames.append(pd.read_parquet(path))
            origin = read_metadata(path).get("labels_origin")
            corpus = frames[-1]["corpus"].iloc[0] if len(frames[-1]) else None
            if corpus is not None and origin is not None:
                origins[corpus] = origin
        merged[name] = pd.concat(frames, ignore_index=True)
    meta = {"labels_origin": origins}
    for name, frame in merged.items():
        write_table(frame, outputs["data_maps" if name == "data_map" else name], metadata=meta)
    metrics = merged["metrics"]
    write_table(seed_summary(metrics, SUMMARY_KEYS), outputs["summary"], metadata=meta)
    long = posthoc_long(metrics, merged["metrics_temperature"], merged["selective"], merged["disagreement"])
    write_table(seed_summary(long, SUMMARY_KEYS + ["calibration"]), outputs["posthoc_summary"], metadata=meta)
    write_table(
        all_paired_tests(long, paper=comparisons, controls=control_comparisons, alpha=alpha),
        outputs["tests"],
        metadata=meta,
    )
