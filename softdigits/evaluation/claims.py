"""The findings claims: one registry entry per claim (`CLAIMS`), each the one home of its check.

A claim's words (what it claims, what the paper says, its rule) are in
`resources/evaluation/claims.yaml`, keyed like `CLAIMS`; its check turns this run's
evaluation outputs (`Evidence`) into conditions (`evaluation.conditions.Condition`: estimate,
interval, p, stability, outcome, the paper's value where it gives one) and the tables shown
beside them. `evaluation.findings` turns the conditions into the claim's verdict and writes
the page. Claims 1-4 are the paper's section 3; 5 and 6 go beyond it (the controls and
selective prediction).

To add a claim: one check and one `CLAIMS` entry here, its words in claims.yaml, and a test
that feeds it a case where it must come out negative.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats as sps

from softdigits.evaluation import conditions as C
from softdigits.evaluation.conditions import Condition
from softdigits.evaluation.dynamics import pooled_from_moments
from softdigits.evaluation.metrics import average_ranks
from softdigits.evaluation.stats import paired_comparisons
from softdigits.training.targets import CONTROL_TARGETS, HUMAN_TARGETS, PRIMARY_SOFT, SOFT_TARGETS

WORDS = Path(__file__).resolve().parents[2] / "resources" / "evaluation" / "claims.yaml"
# The paper's hard comparisons for its soft labels: "original or majority targets" (§3.3).
HARD_TARGETS = ("human_majority", "original")
SELECTIVE_CONTROLS = ("label_smoothing", *HARD_TARGETS)
SPLIT = "test"


# ------------------------------------------------------------------ the evidence


class Evidence:
    """What the checks read: the evaluation's long-form frames (read on first use), the study
    tables, the paper's Table 9 and the settings."""

    def __init__(self, frames: dict[str, Callable[[], pd.DataFrame]], studies: dict, settings: dict):
        self._frames, self.studies, self.settings = frames, studies, settings

    def __getattr__(self, name: str) -> pd.DataFrame:
        if name.startswith("_") or name not in self._frames:
            raise AttributeError(name)
        value = self._frames[name]()
        setattr(self, name, value)  # read once
        return value

    @property
    def alpha(self) -> float:
        return self.settings["alpha"]

    @property
    def seed(self) -> int:
        return self.settings["bootstrap_seed"]

    def seed_maps(self, corpus: str, model: str) -> SeedMaps:
        """The data maps of one (corpus, model), resampled over seeds (made once)."""
        cache = self.__dict__.setdefault("_seed_maps", {})
        if (corpus, model) not in cache:
            cache[corpus, model] = SeedMaps(self, corpus, model)
        return cache[corpus, model]

    @functools.cached_property
    def trained(self) -> set[str]:
        return set(self.metrics["target"])

    def seeds_of(self, frame: pd.DataFrame, **cell) -> pd.Series:
        """seed -> value of one cell of a long-form frame (test split)."""
        keep = frame["split"] == SPLIT
        for key, value in cell.items():
            keep &= frame[key] == value
        return frame[keep].set_index("seed")["value"].sort_index()

    def diffs(self, frame: pd.DataFrame, treatment: str, control: str, **cell) -> np.ndarray:
        """treatment − control per seed both have, in seed order."""
        a = self.seeds_of(frame, target=treatment, **cell)
        b = self.seeds_of(frame, target=control, **cell)
        common = a.index.intersection(b.index)
        return (a.loc[common] - b.loc[common]).to_numpy(dtype=np.float64)

    def paired_test(self, **cell) -> tuple[float, float] | None:
        """(p_holm, p_t) of the paired test of one cell of paired_tests (before T), or None."""
        t = self.tests
        keep = (t["split"] == SPLIT) & (t.get("calibration", "none") == "none")
        for key, value in cell.items():
            keep &= t[key] == value
        rows = t[keep]
        if rows.empty:
            return None
        row = rows.iloc[0]  # a pair in two families: the first (paper) is the one read
        return float(row["p_holm"]), float(row["p_t"])

    def paper_accuracy(self, corpus: str, target: str, model: str, eval_set: str) -> float:
        """The paper's Table 9 accuracy (%) of one cell (NaN where it has none)."""
        p = self.paper_table9
        row = p[(p["corpus"] == corpus) & (p["target"] == target) & (p["model"] == model) & (p["eval_set"] == eval_set)]
        return float(row["mean_pct"].iloc[0]) if len(row) else np.nan


@dataclass
class Result:
    """What a check returns: its conditions, the tables shown beside them, and what it could not run."""

    conditions: list[Condition]
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)  # targets or corpora the claim needs and the run lacks
    note: str = ""


@dataclass(frozen=True)
class Claim:
    check: Callable[[Evidence], Result]
    beyond_paper: bool = False


# ------------------------------------------------------------------ paired comparisons


def paired_condition(
    ev: Evidence,
    frame: pd.DataFrame,
    *,
    corpus: str,
    model: str,
    treatment: str,
    control: str,
    metric: str,
    eval_set: str,
    stratum: str,
    sign: float,
    family: str | None = None,
    scale: float = 1.0,
    paper: float = np.nan,
    unit: str = "",
    statement: str = "",
    test: tuple[float, float] | None = None,
) -> Condition:
    """The paired condition of one (corpus, model, treatment, control) cell of a metric."""
    cell = {"corpus": corpus, "model": model, "comparison": f"{treatment} − {control}"}
    if treatment not in ev.trained or control not in ev.trained:
        return C.untestable(cell, statement, "not run: a target is not in training.targets")
    if test is None:
        extra = {"family": family} if family else {}
        test = ev.paired_test(
            corpus=corpus, model=model, treatment=treatment, control=control, metric=metric, eval_set=eval_set,
            stratum=stratum, **extra,
        )  # fmt: skip
    if test is None:
        return C.untestable(cell, statement, "no paired test (not configured, or fewer than 2 seeds)")
    diff = ev.diffs(frame, treatment, control, corpus=corpus, model=model, metric=metric, eval_set=eval_set,
                    stratum=stratum) * scale  # fmt: skip
    p_holm, p_t = test
    return C.paired(
        cell, statement, diff, sign=sign, p_holm=p_holm, p_raw=p_t, alpha=ev.alpha, seed=ev.seed, paper=paper, unit=unit
    )


def cells(ev: Evidence, corpora: list[str] | None = None) -> list[tuple[str, str]]:
    """(corpus, model) of the run, in order."""
    pairs = ev.metrics[["corpus", "model"]].drop_duplicates().sort_values(["corpus", "model"])
    return [(c, m) for c, m in pairs.itertuples(index=False) if corpora is None or c in corpora]


def conditions_table(conditions: list[Condition]) -> pd.DataFrame:
    """One row per condition: its cell, estimate, interval, p, stability, outcome, paper value."""
    rows = []
    for c in conditions:
        rows.append(
            c.cell
            | {
                "estimate": c.estimate,
                "95% CI": (
                    f"[{c.ci_low:+.3g}, {c.ci_high:+.3g}]" if np.isfinite(c.ci_low) and np.isfinite(c.ci_high) else ""
                ),
                "p": c.p,
                "stability": c.stability,
                "paper": c.paper,
                "ours / paper": c.ratio,
                "seeds for 80% power": c.seeds_needed,
                "outcome": c.outcome + (f" ({c.note})" if c.note else ""),
            }
            | c.extra
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ claim 1


def kl_on_hlv(ev: Evidence) -> Result:
    found = []
    for corpus, model in cells(ev):
        for soft in SOFT_TARGETS:
            for hard in HARD_TARGETS:
                found.append(
                    paired_condition(
                        ev,
                        ev.metrics,
                        corpus=corpus,
                        model=model,
                        treatment=soft,
                        control=hard,
                        metric="kl",
                        eval_set="human_soft",
                        stratum="HLV",
                        sign=-1.0,
                        unit="nats",
                        statement="soft − hard KL on HLV test images < 0",
                    )  # fmt: skip
                )
    return Result(found, [("Paired by seed: soft − hard KL (nats), HLV test images", conditions_table(found))])


# ------------------------------------------------------------------ claim 2


def gains(ev: Evidence, corpus: str, control: str) -> pd.Series:
    """seed -> mean over models of (soft − control) accuracy on the human majority, in points."""
    acc = ev.metrics[
        (ev.metrics["corpus"] == corpus)
        & (ev.metrics["metric"] == "accuracy")
        & (ev.metrics["eval_set"] == "human")
        & (ev.metrics["stratum"] == "all")
        & (ev.metrics["split"] == SPLIT)
    ]
    wide = acc.pivot_table(index=["model", "seed"], columns="target", values="value")
    if PRIMARY_SOFT not in wide or control not in wide:
        return pd.Series(dtype=float)
    per_model_seed = (wide[PRIMARY_SOFT] - wide[control]).dropna() * 100
    complete = per_model_seed.groupby(level="seed").size() == per_model_seed.index.get_level_values("model").nunique()
    return per_model_seed.groupby(level="seed").mean()[complete]


def paper_gain(ev: Evidence, corpus: str, control: str) -> float:
    models = ("simple_ffn", "deeper_ffn", "lenet")
    values = [
        ev.paper_accuracy(corpus, PRIMARY_SOFT, m, "human") - ev.paper_accuracy(corpus, control, m, "human")
        for m in models
    ]
    return float(np.mean(values))


def resampled(values: np.ndarray, seed: int) -> np.ndarray:
    """(resamples, n) of `values` resampled over seeds."""
    return np.asarray(values)[C.resamples(len(values), seed)]


def modest_condition(ev: Evidence, g: pd.Series, control: str, modest: float) -> Condition:
    cell = {"corpus": "mnist", "model": "mean over models", "comparison": f"{PRIMARY_SOFT} − {control}"}
    statement = f"MNIST gain in (0, {modest}] points"
    if len(g) < 2:
        return C.untestable(cell, statement, "fewer than 2 seeds")
    low, high = C.t_interval(g.to_numpy())
    held = C.inside(*C.t_interval(resampled(g.to_numpy(), ev.seed)), 0.0, modest, closed_upper=True)
    paper = paper_gain(ev, "mnist", control)
    return Condition(
        cell,
        statement,
        C.bounded(low, high, 0.0, modest, closed_upper=True),
        estimate=float(g.mean()),
        ci_low=low,
        ci_high=high,
        p=C.paired_p(g.to_numpy()),
        stability=float(np.mean(held)),
        paper=paper,
        seeds_needed=C.seeds_for_power(paper if np.isfinite(paper) else g.mean(), g.std(ddof=1), ev.alpha),
        unit="points",
    )


def larger_condition(ev: Evidence, mnist: pd.Series, ambiguous: pd.Series, control: str) -> Condition:
    cell = {"corpus": "mukhoti − mnist", "model": "mean over models", "comparison": f"{PRIMARY_SOFT} − {control}"}
    statement = "Ambiguous-MNIST gain − MNIST gain > 0"
    if len(mnist) < 2 or len(ambiguous) < 2:
        return C.untestable(cell, statement, "fewer than 2 seeds")

    a, b = ambiguous.to_numpy(), mnist.to_numpy()
    low, high = C.welch_interval(a, b)
    paper = paper_gain(ev, "mukhoti", control) - paper_gain(ev, "mnist", control)
    low_b, _ = C.welch_interval(resampled(a, ev.seed), resampled(b, ev.seed + 1))
    sd = float(np.sqrt(a.var(ddof=1) + b.var(ddof=1)))
    return Condition(
        cell,
        statement,
        "holds" if low > 0 else "fails" if high < 0 else "inconclusive",
        estimate=float(a.mean() - b.mean()),
        ci_low=low,
        ci_high=high,
        p=float(sps.ttest_ind(a, b, equal_var=False).pvalue),
        stability=float(np.mean(low_b > 0)),
        paper=paper,
        seeds_needed=C.seeds_for_power(paper if np.isfinite(paper) else a.mean() - b.mean(), sd, ev.alpha),
        unit="points",
    )


def accuracy_gains(ev: Evidence) -> Result:
    corpora = set(ev.metrics["corpus"])
    needed = [c for c in ("mnist", "mukhoti") if c not in corpora] + [
        t for t in (PRIMARY_SOFT, *HARD_TARGETS) if t not in ev.trained
    ]
    if {"mnist", "mukhoti"} - corpora or PRIMARY_SOFT not in ev.trained:
        return Result([], not_run=needed)
    found = []
    for control in HARD_TARGETS:
        if control not in ev.trained:
            continue
        mnist, ambiguous = gains(ev, "mnist", control), gains(ev, "mukhoti", control)
        found += [
            modest_condition(ev, mnist, control, ev.settings["modest_pp"]),
            larger_condition(ev, mnist, ambiguous, control),
        ]
    return Result(found, [("Gains in accuracy points (human majority, all test images)", conditions_table(found))])


# ------------------------------------------------------------------ claim 3


def synthetic_corpora(studies: dict[str, pd.DataFrame]) -> list[str]:
    """Corpora whose original labels are distributions (not one-hot): model-generated labels."""
    out = []
    for corpus, study in studies.items():
        dist = np.stack(study["label_dist"].to_numpy())
        if not np.all(np.isclose(dist.max(axis=1), 1.0)):
            out.append(corpus)
    return out


def crossover_tests(metrics: pd.DataFrame, corpus: str, alpha: float) -> pd.DataFrame:
    """Paired-by-seed tests of `original` − each human target on overall test accuracy, both
    evaluation sets; Holm within each evaluation set (models x human targets)."""
    acc = metrics[
        (metrics["corpus"] == corpus)
        & (metrics["metric"] == "accuracy")
        & (metrics["stratum"] == "all")
        & (metrics["split"] == SPLIT)
        & metrics["eval_set"].isin(["orig", "human"])
    ]
    return paired_comparisons(acc, [("original", h) for h in HUMAN_TARGETS], alpha=alpha)


def hard_share(maps: pd.DataFrame, thresholds: dict | None) -> pd.Series:
    """Per (model, target): % of the HLV training images in the hard region of the model data
    map, by the corpus's cartography thresholds (reported beside claim 3b, not a condition)."""
    from softdigits.cartography.maps import Thresholds, assign_regions

    hlv = maps[maps["hlv"].astype(bool)]
    if thresholds is None or hlv.empty:
        return pd.Series(dtype=float)
    hard = assign_regions(hlv["confidence"], hlv["variability"], Thresholds(**thresholds)) == "hard"
    return pd.Series(hard, index=hlv.index).groupby([hlv["model"], hlv["target"]]).mean() * 100


def crossover_conditions(ev: Evidence, corpus: str) -> list[Condition]:
    """One condition per (model, human target): the synthetic-trained runs lead on the original
    labels and trail on the human majority. It holds when both parts hold, fails when either
    fails, and is inconclusive otherwise; its estimate is the trail (the human-set margin, the
    one the paper's claim turns on), the lead beside it."""
    tests = crossover_tests(ev.metrics, corpus, ev.alpha).set_index(["model", "control", "eval_set"])
    found = []
    for model in sorted(set(ev.metrics.loc[ev.metrics["corpus"] == corpus, "model"])):
        for human in HUMAN_TARGETS:
            parts = {}
            for eval_set, sign in (("orig", 1.0), ("human", -1.0)):
                key = (model, human, eval_set)
                test = (float(tests.loc[key, "p_holm"]), float(tests.loc[key, "p_t"])) if key in tests.index else None
                paper = ev.paper_accuracy(corpus, "original", model, eval_set) - ev.paper_accuracy(
                    corpus, human, model, eval_set
                )
                parts[eval_set] = paired_condition(
                    ev, ev.metrics, corpus=corpus, model=model, treatment="original", control=human,
                    metric="accuracy", eval_set=eval_set, stratum="all", sign=sign, scale=100.0, paper=paper,
                    unit="points", test=test,
                )  # fmt: skip
            found.append(crossover(parts["orig"], parts["human"], ev))
    return found


def crossover(lead: Condition, trail: Condition, ev: Evidence) -> Condition:
    """The two parts of a crossover as one condition (see crossover_conditions)."""
    kinds = {lead.outcome, trail.outcome}
    outcome = "holds" if kinds == {"holds"} else "fails" if "fails" in kinds else "inconclusive"
    # joint stability: both parts re-decided on the same seed resamples
    diffs = [
        ev.diffs(ev.metrics, "original", trail.cell["comparison"].split(" − ")[1], corpus=lead.cell["corpus"],
                 model=lead.cell["model"], metric="accuracy", eval_set=e, stratum="all")
        for e in ("orig", "human")
    ]  # fmt: skip
    stability = np.nan
    if all(len(d) >= 2 for d in diffs) and np.isfinite(lead.p) and np.isfinite(trail.p):
        idx = C.resamples(len(diffs[0]), ev.seed)
        held = np.ones(len(idx), bool)
        for d, part, sign in zip(diffs, (lead, trail), (1.0, -1.0)):
            raw = C.paired_p(d)
            factor = part.p / raw if raw > 0 else 1.0
            boot = d[idx]
            held &= (sign * boot.mean(axis=1) > 0) & (np.minimum(1.0, C.paired_p(boot) * factor) < ev.alpha)
        stability = float(held.mean())
    note = "; ".join(f"{name}: {c.note}" for name, c in (("lead", lead), ("trail", trail)) if c.note)
    return Condition(
        lead.cell,
        "synthetic-trained runs lead on the original labels and trail on the human majority",
        outcome,
        estimate=trail.estimate,
        ci_low=trail.ci_low,
        ci_high=trail.ci_high,
        p=trail.p,
        stability=stability,
        paper=trail.paper,
        seeds_needed=trail.seeds_needed,
        unit="points",
        note=note,
        extra={
            "lead (orig set)": lead.estimate,
            "lead 95% CI": f"[{lead.ci_low:+.3g}, {lead.ci_high:+.3g}]" if np.isfinite(lead.ci_low) else "",
            "lead p": lead.p,
            "lead paper": lead.paper,
            "lead": lead.outcome,
            "trail": trail.outcome,
        },
    )


# ------------------------------------------------------------------ correlations (claims 3b, 4)


class SeedMaps:
    """The data maps of one (corpus, model) per target, resampled over seeds."""

    def __init__(self, ev: Evidence, corpus: str, model: str):
        self.ev, self.corpus, self.model = ev, corpus, model
        self.maps = ev.data_maps[(ev.data_maps["corpus"] == corpus) & (ev.data_maps["model"] == model)]
        self.moments = ev.data_map_seeds[
            (ev.data_map_seeds["corpus"] == corpus) & (ev.data_map_seeds["model"] == model)
        ]
        self._resampled: dict[str, dict[str, np.ndarray]] = {}
        self._ranks: dict[tuple[str, str], np.ndarray] = {}
        self._observed: dict[str, pd.DataFrame] = {}

    def observed(self, target: str) -> pd.DataFrame:
        if target not in self._observed:
            self._observed[target] = self.maps[self.maps["target"] == target].set_index("image_id")
        return self._observed[target]

    def resampled(self, target: str) -> dict[str, np.ndarray]:
        """variable -> (resamples, images) of the map's confidence / variability, in observed() order."""
        if target not in self._resampled:
            self._resampled[target] = self._resample(target)
        return self._resampled[target]

    def _resample(self, target: str) -> dict[str, np.ndarray]:
        m = self.moments[self.moments["target"] == target]
        order = self.observed(target).index
        mean = m.pivot(index="seed", columns="image_id", values="p_mean")[order].to_numpy()
        sq = m.pivot(index="seed", columns="image_id", values="p_sq_mean")[order].to_numpy()
        idx = C.resamples(len(mean), self.ev.seed)
        confidence, variability = pooled_from_moments(mean[idx].transpose(1, 0, 2), sq[idx].transpose(1, 0, 2))
        return {"confidence": confidence, "variability": variability}

    def ranks(self, target: str, variable: str) -> np.ndarray:
        """(resamples, images) centred ranks of `variable` in every seed resample."""
        key = (target, variable)
        if key not in self._ranks:
            # ranks by a double argsort: resampled maps are continuous, so ties do not occur
            r = self.resampled(target)[variable].argsort(axis=1).argsort(axis=1).astype(np.float64)
            self._ranks[key] = r - r.mean(axis=1, keepdims=True)
        return self._ranks[key]

    def rhos(self, target: str, uncertainty: str, variable: str) -> np.ndarray:
        """Spearman rho of `uncertainty` with `variable` in every seed resample."""
        u = average_ranks(self.observed(target)[uncertainty].to_numpy())
        return row_correlation(self.ranks(target, variable), u - u.mean())


def row_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Correlation of each row of centred `a` with centred `b` (a vector, or rows of its own)."""
    num = a @ b if b.ndim == 1 else np.einsum("ij,ij->i", a, b)
    norm_b = b @ b if b.ndim == 1 else np.einsum("ij,ij->i", b, b)
    return num / np.sqrt(np.einsum("ij,ij->i", a, a) * norm_b)


def spearman_cell(ev: Evidence, corpus: str, model: str, target: str, uncertainty: str, variable: str):
    sp = ev.spearman
    row = sp[
        (sp["corpus"] == corpus)
        & (sp["model"] == model)
        & (sp["target"] == target)
        & (sp["stratum"] == "all")
        & (sp["uncertainty"] == uncertainty)
        & (sp["variable"] == variable)
    ]
    return row.iloc[0] if len(row) else None


def negligible_conditions(ev: Evidence, corpus: str) -> list[Condition]:
    bound = ev.settings["negligible_rho"]
    found = []
    for model in sorted(set(ev.data_maps.loc[ev.data_maps["corpus"] == corpus, "model"])):
        maps = ev.seed_maps(corpus, model)
        for variable in ("confidence", "variability"):
            cell = {"corpus": corpus, "model": model, "comparison": f"rho(u_mean, {variable}), synthetic target"}
            statement = f"|rho| < {bound}"
            row = spearman_cell(ev, corpus, model, "original", "u_mean", variable)
            if row is None or not np.isfinite(row["rho"]):
                found.append(C.untestable(cell, statement, "no correlation for the synthetic target"))
                continue
            n = int(row["n"])
            low, high = C.spearman_interval(row["rho"], n)
            low_b, high_b = C.spearman_interval(maps.rhos("original", "u_mean", variable), n)
            held = (low_b > -bound) & (high_b < bound)
            found.append(
                Condition(
                    cell,
                    statement,
                    C.bounded(low, high, -bound, bound),
                    estimate=float(row["rho"]),
                    ci_low=low,
                    ci_high=high,
                    p=float(row["p_permutation"]),
                    stability=float(np.mean(held)),
                    note="" if len(maps.moments) else "no per-seed maps",
                )  # fmt: skip
            )
    return found


def synthetic_misaligned(ev: Evidence) -> Result:
    studies = ev.studies
    corpora = synthetic_corpora(studies)
    if not corpora:
        return Result([], not_run=["a corpus with synthetic original labels"])
    needed = [t for t in ("original", *HUMAN_TARGETS) if t not in ev.trained]
    found, tables = [], []
    for corpus in corpora:
        cross = crossover_conditions(ev, corpus)
        negligible = negligible_conditions(ev, corpus)
        found += cross + negligible
        thresholds = ev.settings["thresholds"].get(corpus)
        share = hard_share(ev.data_maps[ev.data_maps["corpus"] == corpus], thresholds)
        hard = pd.DataFrame(
            [
                {"corpus": corpus, "model": m, "target": t, "hard % of HLV training images": v}
                for (m, t), v in share.items()
                if t in ("original", PRIMARY_SOFT)
            ]
        )
        tables += [
            (f"(a) Crossover on {corpus}: synthetic − human-trained accuracy (points) on the human majority "
             "(the trail; the lead on the original labels beside it), paired by seed", conditions_table(cross)),
            (f"(b) Spearman rho of u_mean with the synthetic target's map on {corpus}", conditions_table(negligible)),
        ]  # fmt: skip
        if len(hard):
            tables.append((f"Beside (b), not a condition: the hard region's share on {corpus}", hard))
    return Result(found, tables, not_run=needed)


def best_soft_condition(ev: Evidence, corpus: str, model: str, uncertainty: str) -> Condition:
    cell = {"corpus": corpus, "model": model, "comparison": f"best soft − best other rho({uncertainty}, confidence)"}
    statement = "the strongest negative correlation is a soft target's"
    soft = [t for t in SOFT_TARGETS if t in ev.trained]
    other = [t for t in HARD_TARGETS if t in ev.trained]
    rows = {t: spearman_cell(ev, corpus, model, t, uncertainty, "confidence") for t in soft + other}
    rows = {t: r for t, r in rows.items() if r is not None and np.isfinite(r["rho"])}
    soft, other = [t for t in soft if t in rows], [t for t in other if t in rows]
    if not soft or not other:
        return C.untestable(cell, statement, "no correlation for a soft or an other target")
    maps = ev.seed_maps(corpus, model)
    # the images every compared target's map holds (a map leaves out images without a gold
    # digit, which differ by target): the correlations of one condition are over the same images
    common = functools.reduce(lambda a, b: a.intersection(b), (maps.observed(t).index for t in rows))
    n = len(common)
    if n <= 3:
        return C.untestable(cell, statement, "fewer than 4 images in every target's map")
    u = average_ranks(maps.observed(soft[0]).loc[common, uncertainty].to_numpy())
    u = u - u.mean()
    ranks, boot = {}, {}
    for t in rows:
        at = maps.observed(t).index.get_indexer(common)
        conf = maps.observed(t)["confidence"].to_numpy()[at]
        observed = average_ranks(conf)
        ranks[t] = observed - observed.mean()
        r = maps.resampled(t)["confidence"][:, at].argsort(axis=1).argsort(axis=1).astype(np.float64)
        boot[t] = r - r.mean(axis=1, keepdims=True)
    rho = {t: float(row_correlation(ranks[t][None, :], u)[0]) for t in rows}
    s, o = min(soft, key=rho.get), min(other, key=rho.get)
    r12 = float(row_correlation(ranks[s][None, :], ranks[o])[0])
    low, high = C.dependent_difference_interval(rho[s], rho[o], r12, n)
    outcome = margin_outcome(*C.spearman_interval(rho[s], n), low, high)
    # every seed resample: the best of each kind again, their rank correlation, the same rule
    soft_b = np.array([row_correlation(boot[t], u) for t in soft])
    other_b = np.array([row_correlation(boot[t], u) for t in other])
    best_s, best_o = soft_b.argmin(axis=0), other_b.argmin(axis=0)
    r1, r2 = soft_b.min(axis=0), other_b.min(axis=0)
    r12_b = np.empty(len(r1))
    for i, j in set(zip(best_s, best_o)):
        rows_ij = (best_s == i) & (best_o == j)
        r12_b[rows_ij] = row_correlation(boot[soft[i]][rows_ij], boot[other[j]][rows_ij])
    low_b, high_b = C.dependent_difference_interval(r1, r2, r12_b, n)
    soft_low, soft_high = C.spearman_interval(r1, n)
    held = (soft_high < 0) & (high_b < 0)
    return Condition(
        cell, statement, outcome, estimate=rho[s] - rho[o], ci_low=low, ci_high=high, p=float(rows[s]["p_permutation"]),
        stability=float(np.mean(held)),
        extra={"best soft": f"{s} {rho[s]:+.3f}", "best other": f"{o} {rho[o]:+.3f}", "images": n},
    )  # fmt: skip


def margin_outcome(soft_low: float, soft_high: float, margin_low: float, margin_high: float) -> str:
    """Claim 4's rule: the soft rho below 0 and the margin below 0 hold; a margin above 0 (or a
    soft rho above 0) fails; anything else is inconclusive."""
    if soft_high < 0 and margin_high < 0:
        return "holds"
    if margin_low > 0 or soft_low > 0:
        return "fails"
    return "inconclusive"


def soft_correlates_best(ev: Evidence) -> Result:
    found = [best_soft_condition(ev, corpus, model, u) for corpus, model in cells(ev) for u in ("u_mean", "u_prop")]
    return Result(found, [("Margin of the strongest soft-label correlation with confidence", conditions_table(found))])


# ------------------------------------------------------------------ claims 5 and 6


def beats_each(ev: Evidence, frame: pd.DataFrame, controls, *, metric, eval_set, stratum, statement, family_of):
    """human_uncertainty against each control, per (corpus, model): paired conditions."""
    not_run = [t for t in (PRIMARY_SOFT, *controls) if t not in ev.trained]
    found = [
        paired_condition(
            ev,
            frame,
            corpus=corpus,
            model=model,
            treatment=PRIMARY_SOFT,
            control=control,
            metric=metric,
            eval_set=eval_set,
            stratum=stratum,
            sign=-1.0,
            family=family_of(control),
            statement=statement,
        )  # fmt: skip
        for corpus, model in cells(ev)
        for control in controls
    ]
    return found, not_run


def human_information(ev: Evidence) -> Result:
    found, not_run = beats_each(
        ev, ev.metrics, CONTROL_TARGETS, metric="kl", eval_set="human_soft", stratum="HLV",
        statement="human_uncertainty − control KL on HLV < 0", family_of=lambda c: "controls",
    )  # fmt: skip
    return Result(
        found, [("Paired by seed: human_uncertainty − control KL (nats), HLV", conditions_table(found))], not_run
    )


def selective_gain(ev: Evidence) -> Result:
    aurc = ev.selective[(ev.selective["calibration"] == "none") & (ev.selective["metric"] == "aurc")]
    found, not_run = beats_each(
        ev, aurc.assign(eval_set="human"), SELECTIVE_CONTROLS, metric="aurc", eval_set="human", stratum="all",
        statement="human_uncertainty − control AURC < 0",
        family_of=lambda c: "controls" if c in CONTROL_TARGETS else "paper",
    )  # fmt: skip
    return Result(found, [("Paired by seed: human_uncertainty − control AURC, all test images", conditions_table(found))], not_run)  # fmt: skip


CLAIMS = {
    "soft_labels_lower_hlv_kl": Claim(kl_on_hlv),
    "gains_modest_on_mnist_larger_on_ambiguous": Claim(accuracy_gains),
    "synthetic_labels_misaligned": Claim(synthetic_misaligned),
    "soft_labels_align_with_human_uncertainty": Claim(soft_correlates_best),
    "human_information_not_softness": Claim(human_information, beyond_paper=True),
    "soft_labels_help_selective_prediction": Claim(selective_gain, beyond_paper=True),
}


@functools.cache
def words() -> dict[str, dict]:
    """Each claim's words (claim, paper, rule) from resources/evaluation/claims.yaml."""
    return yaml.safe_load(WORDS.read_text())
