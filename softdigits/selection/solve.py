"""Budgeted, stratified selection and train/val/test split as a small integer program.

Within a stratum (digit, region) the images are exchangeable, so the integer
program decides COUNTS, n[d, r, s] for every digit d, region r and split s, and
the images of each stratum are then drawn with a seeded random generator. That
keeps the program tiny (at most 10 x 4 x 3 integers) and exact.

Hard constraints:
- sum over strata of n[., ., s] = budget[s]                       (split budgets)
- N[d, r] = sum_s n[d, r, s] <= available[d, r]                    (each image at most once)
- n[d, r, s] = share[s] * N[d, r] rounded down or up, share[s] = budget[s] / total
  (split proportions held inside every stratum; as integers:
  |total * n[d, r, s] - budget[s] * N[d, r]| <= total - 1)
- n[d, easy, train] >= min_easy_per_digit_train for every digit 0-9
- sum over digits of n[., r, s] >= min_per_region_split[r] for every region r and split s
  (so that, e.g., hard and ambiguous images reach train, val and test: the balanced
  objective alone could leave a split without a scarce region)
- N[d, r] = 0 where region r has weight 0 (not a candidate region)

Objective: stay close to balanced integer targets, min sum |N[d, r] - target[d, r]|.
The targets are balanced by water-filling: each digit gets an equal share of the
total budget, each region of a digit a share proportional to its weight; a stratum
with fewer images than its share (or a digit with fewer candidates) gives the rest
to the others in proportion, and the easy strata get at least what the train
minimum needs. They are rounded to integers summing to the budget (largest
remainder), so the optimum is usually 0 and CBC proves it at the root.

Infeasible requests are caught before solving, with a message naming the
constraint and the shortfall.
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from softdigits.allocation import round_to_total, water_fill
from softdigits.constants import DIGITS, REGIONS, STUDY_SPLITS
from softdigits.errors import KnownError

log = logging.getLogger(__name__)


class SelectionInfeasible(KnownError, ValueError):
    """The configured selection cannot be met by the corpus; the message says why and by how much."""


class SelectionCheckFailed(AssertionError):
    """A selection breaks one of the program's constraints (should never happen)."""


@dataclass(frozen=True)
class SelectionSpec:
    budget: dict  # split -> number of images
    min_easy_per_digit_train: int
    region_weights: dict  # region -> relative weight; 0 = not a candidate region
    min_per_region_split: dict = field(default_factory=dict)  # region -> minimum images in every split
    seed: int = 0
    time_limit_s: float = 60.0
    corpus: str = field(default="corpus")

    def __post_init__(self):
        if set(self.budget) != set(STUDY_SPLITS):
            raise ValueError(
                f"selection budget of {self.corpus} needs exactly the splits {STUDY_SPLITS}, got {sorted(self.budget)}"
            )
        if any(int(v) < 0 for v in self.budget.values()) or self.total <= 0:
            raise ValueError(
                f"selection budget of {self.corpus} must be non-negative with a positive total: {self.budget}"
            )
        if set(self.region_weights) != set(REGIONS):
            raise ValueError(
                f"selection region_weights need exactly the regions {REGIONS}, got {sorted(self.region_weights)}"
            )
        if any(w < 0 for w in self.region_weights.values()) or not any(w > 0 for w in self.region_weights.values()):
            raise ValueError(f"selection region_weights must be >= 0 with at least one > 0: {self.region_weights}")
        unknown = set(self.min_per_region_split) - set(REGIONS)
        if unknown or any(int(v) < 0 for v in self.min_per_region_split.values()):
            raise ValueError(
                f"selection min_per_region_split of {self.corpus} needs regions from {REGIONS} "
                f"and counts >= 0: {self.min_per_region_split}"
            )

    def region_split_min(self, region: str) -> int:
        return int(self.min_per_region_split.get(region, 0))

    @property
    def total(self) -> int:
        return int(sum(self.budget.values()))

    def share(self, split: str) -> float:
        return self.budget[split] / self.total

    @property
    def candidate_regions(self) -> list[str]:
        return [r for r in REGIONS if self.region_weights[r] > 0]

    def min_easy_stratum(self) -> int:
        """Fewest easy images of a digit that allow min_easy_per_digit_train of them in train.

        The train count is share*N rounded down or up, so it can reach min_easy
        only when share*N > min_easy - 1.
        """
        m = self.min_easy_per_digit_train
        if m <= 0:
            return 0
        share = self.share("train")
        if share == 0:
            return math.inf
        return math.floor((m - 1) / share) + 1


# -------------------------------------------------------------- availability


def availability(candidates: pd.DataFrame) -> pd.DataFrame:
    """Images per digit (rows 0-9) and region (columns), zeros included."""
    counts = pd.crosstab(candidates["digit"], candidates["region"])
    return counts.reindex(index=list(DIGITS), columns=list(REGIONS), fill_value=0).astype(int)


def check_feasible(avail: pd.DataFrame, spec: SelectionSpec) -> None:
    """Raise SelectionInfeasible naming the first constraint the corpus cannot meet."""
    name = spec.corpus
    m = spec.min_easy_per_digit_train
    if m > 0 and "easy" not in spec.candidate_regions:
        raise SelectionInfeasible(
            f"{name}: min_easy_per_digit_train={m} but the easy region has weight 0 (not a candidate)"
        )
    if 10 * m > spec.budget["train"]:
        raise SelectionInfeasible(
            f"{name}: min_easy_per_digit_train={m}: at least {m} easy images per digit in train need {10 * m} train images, "
            f"but the train budget is {spec.budget['train']}: over by {10 * m - spec.budget['train']}"
        )
    need = spec.min_easy_stratum()
    if m > 0:
        short = {d: need - int(avail.loc[d, "easy"]) for d in DIGITS if avail.loc[d, "easy"] < need}
        if short:
            worst = ", ".join(
                f"digit {d}: {int(avail.loc[d, 'easy'])} available, short by {s}" for d, s in short.items()
            )
            raise SelectionInfeasible(
                f"{name}: constraint min_easy_per_digit_train={m} is infeasible: with train taking "
                f"{spec.share('train'):.3f} of every stratum, each digit needs at least {need} easy images; "
                f"{worst}. Lower min_easy_per_digit_train or relax the easy thresholds of cartography."
            )
        if 10 * need > spec.total:
            raise SelectionInfeasible(
                f"{name}: min_easy_per_digit_train={m}: the easy minimum needs {10 * need} images in all (10 x {need}), "
                f"more than the budget {spec.total}: over by {10 * need - spec.total}"
            )
    check_region_split_minimums(avail, spec)
    allowed = int(avail[spec.candidate_regions].to_numpy().sum())
    if allowed < spec.total:
        raise SelectionInfeasible(
            f"{name}: budget {spec.total} images ({spec.budget}) exceeds the {allowed} candidates in "
            f"regions {spec.candidate_regions}: short by {spec.total - allowed}"
        )


def check_region_split_minimums(avail: pd.DataFrame, spec: SelectionSpec) -> None:
    """Raise SelectionInfeasible when min_per_region_split cannot be met whatever the solver does.

    Checked in turn: the minimums fit each split's budget; a minimum is asked only of a
    candidate region; the region holds 3 x its minimum; and each split can take enough:
    a split s takes at most floor((budget[s] * N + total - 1) / total) images of a
    stratum of N (the proportion constraint), so of region r at most the sum of that
    over the digits with N = all available images.
    """
    name = spec.corpus
    wanted = {r: spec.region_split_min(r) for r in REGIONS if spec.region_split_min(r) > 0}
    for s in STUDY_SPLITS:
        if sum(wanted.values()) > spec.budget[s]:
            raise SelectionInfeasible(
                f"{name}: min_per_region_split {wanted} asks {sum(wanted.values())} images of split {s}, "
                f"whose budget is {spec.budget[s]}: lower min_per_region_split"
            )
    for r, m in wanted.items():
        have = int(avail[r].sum())
        if spec.region_weights[r] == 0:
            raise SelectionInfeasible(
                f"{name}: min_per_region_split.{r}={m} but region {r} has weight 0 (not a candidate)"
            )
        if len(STUDY_SPLITS) * m > have:
            raise SelectionInfeasible(
                f"{name}: constraint min_per_region_split.{r}={m} is infeasible: {len(STUDY_SPLITS)} splits x {m} "
                f"need {len(STUDY_SPLITS) * m} {r} images, the corpus has {have}: short by "
                f"{len(STUDY_SPLITS) * m - have}. Lower min_per_region_split.{r} or change the cartography of this corpus."
            )
        for s in STUDY_SPLITS:
            most = sum((spec.budget[s] * int(avail.loc[d, r]) + spec.total - 1) // spec.total for d in DIGITS)
            if most < m:
                raise SelectionInfeasible(
                    f"{name}: constraint min_per_region_split.{r}={m} is infeasible for split {s}: the corpus "
                    f"has {have} {r} images, of which split {s} (share {spec.share(s):.3f} of every stratum) "
                    f"can take at most {most}: short by {m - most}. Lower min_per_region_split.{r} or change "
                    f"the cartography of this corpus."
                )


# ------------------------------------------------------------------ targets


def stratum_targets(avail: pd.DataFrame, spec: SelectionSpec) -> pd.DataFrame:
    """Balanced integer target size of every (digit, region) stratum; sums to the budget."""
    weights = np.array([spec.region_weights[r] for r in REGIONS], dtype=np.float64)
    cap = avail.to_numpy(dtype=np.float64) * (weights > 0)
    lo = np.zeros_like(cap)
    lo[:, REGIONS.index("easy")] = spec.min_easy_stratum() if spec.min_easy_per_digit_train > 0 else 0
    lo = np.minimum(lo, cap)
    # Digits first (integer totals), then the regions inside each digit.
    per_digit = round_to_total(
        water_fill(np.ones(len(DIGITS)), lo.sum(axis=1), cap.sum(axis=1), spec.total), spec.total
    )
    targets = np.stack(
        [round_to_total(water_fill(weights, lo[d], cap[d], per_digit[d]), per_digit[d]) for d in range(len(DIGITS))]
    )
    return pd.DataFrame(targets, index=avail.index, columns=avail.columns)


# ---------------------------------------------------------- integer program


@dataclass
class SolveResult:
    counts: pd.DataFrame  # digit, region, split, count
    status: str
    objective: float
    solver_log: str


def solve_counts(avail: pd.DataFrame, targets: pd.DataFrame, spec: SelectionSpec) -> SolveResult:
    """The integer program over stratum counts (see the module docstring), solved with CBC."""
    import pulp

    prob = pulp.LpProblem(f"selection_{spec.corpus}", pulp.LpMinimize)
    strata = [(d, r) for d in DIGITS for r in REGIONS]
    n = {
        (d, r, s): prob.add_variable(f"n_{d}_{r}_{s}", lowBound=0, upBound=int(avail.loc[d, r]), cat="Integer")
        for d, r in strata
        for s in STUDY_SPLITS
    }
    total = {(d, r): pulp.lpSum(n[d, r, s] for s in STUDY_SPLITS) for d, r in strata}
    dev = {k: prob.add_variable(f"dev_{k[0]}_{k[1]}", lowBound=0) for k in strata}
    prob += pulp.lpSum(dev.values())
    for s in STUDY_SPLITS:
        prob += pulp.lpSum(n[d, r, s] for d, r in strata) == spec.budget[s], f"budget_{s}"
    for d, r in strata:
        t = float(targets.loc[d, r])
        prob += total[d, r] <= int(avail.loc[d, r]), f"available_{d}_{r}"
        if spec.region_weights[r] == 0:
            prob += total[d, r] == 0, f"not_candidate_{d}_{r}"
        prob += dev[d, r] >= total[d, r] - t
        prob += dev[d, r] >= t - total[d, r]
        for s in STUDY_SPLITS:
            # |n - share * N| < 1, multiplied by the budget total to stay in integers
            gap = spec.total * n[d, r, s] - spec.budget[s] * total[d, r]
            prob += gap <= spec.total - 1, f"proportion_hi_{d}_{r}_{s}"
            prob += gap >= 1 - spec.total, f"proportion_lo_{d}_{r}_{s}"
    for d in DIGITS:
        prob += n[d, "easy", "train"] >= spec.min_easy_per_digit_train, f"min_easy_train_{d}"
    for r in REGIONS:
        if spec.region_split_min(r) > 0:
            for s in STUDY_SPLITS:
                prob += pulp.lpSum(n[d, r, s] for d in DIGITS) >= spec.region_split_min(r), f"min_{r}_{s}"

    with tempfile.TemporaryDirectory() as tmp:
        solver_log = Path(tmp) / "cbc.log"
        # The CBC binary bundled with the pinned PuLP (deprecated for PuLP 4, which is not used here).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            solver = pulp.PULP_CBC_CMD(
                msg=False,
                timeLimit=spec.time_limit_s,
                threads=1,
                logPath=str(solver_log),
                options=["randomSeed 1", "randomCbcSeed 1"],
            )
        prob.solve(solver)
        text = solver_log.read_text() if solver_log.exists() else ""
    status = pulp.LpStatus[prob.status]
    has_solution = prob.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    if not has_solution:
        raise SelectionInfeasible(
            f"{spec.corpus}: the selection program has no solution (CBC status {status!r}, solution "
            f"status {pulp.LpSolution[prob.sol_status]!r}) although every single constraint passed its "
            f"availability check; the rounding of the split proportions may be too tight for these budgets"
            f" together with min_easy_per_digit_train={spec.min_easy_per_digit_train} and "
            f"min_per_region_split={spec.min_per_region_split}"
        )
    if prob.sol_status != pulp.LpSolutionOptimal:
        status = f"{status} (time limit {spec.time_limit_s}s: best solution found, optimality not proven)"
    counts = pd.DataFrame(
        [(d, r, s, int(round(v.value()))) for (d, r, s), v in n.items()],
        columns=["digit", "region", "split", "count"],
    )
    return SolveResult(counts=counts, status=status, objective=float(pulp.value(prob.objective)), solver_log=text)


# ------------------------------------------------------------- draw and check


def draw_images(candidates: pd.DataFrame, counts: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Draw each stratum's images at random (seeded per stratum) and assign them to splits."""
    pieces = []
    for (d, r), group in counts.groupby(["digit", "region"], sort=True):
        per_split = group.set_index("split")["count"].reindex(list(STUDY_SPLITS), fill_value=0)
        if per_split.sum() == 0:
            continue
        pool = np.sort(candidates.loc[(candidates["digit"] == d) & (candidates["region"] == r), "image_id"].to_numpy())
        rng = np.random.default_rng([seed, int(d), REGIONS.index(r)])
        chosen = pool[rng.permutation(len(pool))[: per_split.sum()]]
        splits = np.repeat(list(STUDY_SPLITS), per_split.to_numpy())
        pieces.append(pd.DataFrame({"image_id": chosen, "digit": int(d), "region": r, "split": splits}))
    selection = pd.concat(pieces, ignore_index=True)
    rank = selection["split"].map({s: i for i, s in enumerate(STUDY_SPLITS)})  # train, val, test
    return (
        selection.assign(rank=rank)
        .sort_values(["rank", "digit", "region", "image_id"])
        .drop(columns="rank")
        .reset_index(drop=True)
    )


def check_selection(selection: pd.DataFrame, candidates: pd.DataFrame, spec: SelectionSpec) -> None:
    """Verify every constraint of the program on the drawn selection; raise naming the one broken."""

    def fail(msg: str):
        raise SelectionCheckFailed(f"{spec.corpus}: selection breaks {msg}")

    if selection["image_id"].duplicated().any():
        fail(
            f"'each image at most once': {selection.loc[selection['image_id'].duplicated(), 'image_id'].iloc[0]!r} repeats"
        )
    known = candidates.set_index("image_id")[["digit", "region"]]
    missing = ~selection["image_id"].isin(known.index)
    if missing.any():
        fail(f"'candidates only': {selection.loc[missing, 'image_id'].iloc[0]!r} is not in the data map")
    ref = known.loc[selection["image_id"]]
    if not (
        (ref["digit"].to_numpy() == selection["digit"].to_numpy()).all()
        and (ref["region"].to_numpy() == selection["region"].to_numpy()).all()
    ):
        fail("'digit and region as in the data map'")
    if not selection["split"].isin(STUDY_SPLITS).all():
        fail(f"'splits {STUDY_SPLITS}'")
    per_split = selection["split"].value_counts().reindex(list(STUDY_SPLITS), fill_value=0)
    for s in STUDY_SPLITS:
        if per_split[s] != spec.budget[s]:
            fail(f"'budget_{s}': {per_split[s]} selected, budget {spec.budget[s]}")
    easy_train = selection[(selection["region"] == "easy") & (selection["split"] == "train")]
    easy_train = easy_train["digit"].value_counts().reindex(list(DIGITS), fill_value=0)
    low = easy_train[easy_train < spec.min_easy_per_digit_train]
    if len(low):
        fail(f"'min_easy_train': digit {low.index[0]} has {low.iloc[0]} easy train images")
    for r in REGIONS:
        for s in STUDY_SPLITS:
            got = int(((selection["region"] == r) & (selection["split"] == s)).sum())
            if got < spec.region_split_min(r):
                fail(f"'min_per_region_split': {got} {r} images in {s}, minimum {spec.region_split_min(r)}")
    not_candidate = ~selection["region"].isin(spec.candidate_regions)
    if not_candidate.any():
        fail(f"'candidate regions': {selection.loc[not_candidate, 'image_id'].iloc[0]!r} is in a weight-0 region")
    table = pd.crosstab([selection["digit"], selection["region"]], selection["split"]).reindex(
        columns=list(STUDY_SPLITS), fill_value=0
    )
    for (d, r), row in table.iterrows():
        n_total = row.sum()
        for s in STUDY_SPLITS:
            if abs(spec.total * row[s] - spec.budget[s] * n_total) > spec.total - 1:
                fail(
                    f"'proportion' in stratum (digit {d}, {r}): {row[s]} of {n_total} in {s}, "
                    f"expected {spec.share(s) * n_total:.2f} rounded down or up"
                )


def strata_table(selection: pd.DataFrame, avail: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """Per (split, digit, region): selected count; plus the stratum's availability and target."""
    grid = pd.MultiIndex.from_product([STUDY_SPLITS, DIGITS, REGIONS], names=["split", "digit", "region"])
    counts = selection.groupby(["split", "digit", "region"]).size().reindex(grid, fill_value=0)
    out = counts.rename("count").reset_index()
    out["available"] = [int(avail.loc[d, r]) for d, r in zip(out["digit"], out["region"])]
    out["target"] = [round(float(targets.loc[d, r]), 2) for d, r in zip(out["digit"], out["region"])]
    return out


def strata_markdown(strata: pd.DataFrame, corpus: str) -> str:
    """The strata table as Markdown: one block per split, digits as rows, regions as columns."""
    from softdigits.io import markdown_table

    blocks = [f"# Selection strata: {corpus}\n"]
    for s in STUDY_SPLITS:
        wide = strata[strata["split"] == s].pivot(index="digit", columns="region", values="count")
        wide = wide.reindex(columns=list(REGIONS), fill_value=0)
        wide["total"] = wide.sum(axis=1)
        wide.loc["all"] = wide.sum()
        blocks.append(f"## {s} ({int(wide.loc['all', 'total'])} images)\n")
        blocks.append(markdown_table(wide.reset_index().rename(columns={"digit": "digit"}), floatfmt="{:.0f}"))
    avail = strata[strata["split"] == STUDY_SPLITS[0]].pivot(index="digit", columns="region", values="available")
    avail = avail.reindex(columns=list(REGIONS), fill_value=0)
    avail.loc["all"] = avail.sum()
    blocks.append("## candidates available (data map)\n")
    blocks.append(markdown_table(avail.reset_index(), floatfmt="{:.0f}"))
    return "\n".join(blocks)


def select(candidates: pd.DataFrame, spec: SelectionSpec) -> tuple[pd.DataFrame, pd.DataFrame, SolveResult]:
    """Choose and split the images: (selection, strata table, solver result).

    `candidates` has one row per image: image_id, digit (gold), region.
    """
    for col in ("image_id", "digit", "region"):
        if col not in candidates.columns:
            raise KeyError(f"{spec.corpus}: candidates lack column {col!r}")
    if candidates["image_id"].duplicated().any():
        dup = candidates.loc[candidates["image_id"].duplicated(), "image_id"].iloc[0]
        raise ValueError(f"{spec.corpus}: image_id {dup!r} occurs more than once in the data map")
    unknown = ~candidates["region"].isin(REGIONS)
    if unknown.any():
        raise ValueError(
            f"{spec.corpus}: image {candidates.loc[unknown, 'image_id'].iloc[0]!r} has "
            f"unknown region {candidates.loc[unknown, 'region'].iloc[0]!r}"
        )
    bad_digit = ~candidates["digit"].isin(DIGITS)
    if bad_digit.any():
        raise ValueError(
            f"{spec.corpus}: image {candidates.loc[bad_digit, 'image_id'].iloc[0]!r} has "
            f"digit {candidates.loc[bad_digit, 'digit'].iloc[0]!r}, expected 0-9"
        )
    avail = availability(candidates)
    check_feasible(avail, spec)
    targets = stratum_targets(avail, spec)
    result = solve_counts(avail, targets, spec)
    log.info("%s: CBC status %s, objective %.4f", spec.corpus, result.status, result.objective)
    selection = draw_images(candidates, result.counts, spec.seed)
    check_selection(selection, candidates, spec)
    return selection, strata_table(selection, avail, targets), result
