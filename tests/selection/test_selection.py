"""Selection: targets, the integer program's constraints on random small corpora, infeasibility messages."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from softdigits.constants import REGIONS, STUDY_SPLITS
from softdigits.selection import solve as S

EQUAL = {"easy": 1.0, "ambiguous": 1.0, "hard": 1.0, "other": 0.0}


def corpus(counts: dict[tuple[int, str], int]) -> pd.DataFrame:
    """Candidates with the given number of images per (digit, region)."""
    rows = [(f"c:{d}:{r}:{i}", d, r) for (d, r), n in sorted(counts.items()) for i in range(n)]
    return pd.DataFrame(rows, columns=["image_id", "digit", "region"])


def uniform_corpus(easy=30, ambiguous=10, hard=5, other=5) -> pd.DataFrame:
    sizes = dict(easy=easy, ambiguous=ambiguous, hard=hard, other=other)
    return corpus({(d, r): sizes[r] for d in range(10) for r in REGIONS})


def spec(train=60, val=20, test=20, min_easy=3, weights=EQUAL, seed=0, per_split=None) -> S.SelectionSpec:
    return S.SelectionSpec(
        budget={"train": train, "val": val, "test": test},
        min_easy_per_digit_train=min_easy,
        region_weights=weights,
        seed=seed,
        time_limit_s=30,
        corpus="toy",
        min_per_region_split=per_split or {},
    )


def assert_constraints_hold(selection: pd.DataFrame, candidates: pd.DataFrame, sp: S.SelectionSpec) -> None:
    """The program's constraints, checked independently of softdigits.selection.solve.check_selection."""
    assert not selection["image_id"].duplicated().any()
    merged = selection.merge(candidates, on="image_id", suffixes=("", "_cand"), how="left", validate="1:1")
    assert merged["digit_cand"].notna().all()
    assert (merged["digit"] == merged["digit_cand"]).all() and (merged["region"] == merged["region_cand"]).all()
    assert selection["split"].value_counts().to_dict() == {s: n for s, n in sp.budget.items() if n > 0}
    easy_train = selection.query("region == 'easy' and split == 'train'")["digit"].value_counts()
    for d in range(10):
        assert easy_train.get(d, 0) >= sp.min_easy_per_digit_train
    per_region_split = selection.groupby(["region", "split"]).size()
    for r, m in sp.min_per_region_split.items():
        for s in STUDY_SPLITS:
            assert per_region_split.get((r, s), 0) >= m, (r, s)
    assert set(selection["region"]) <= {r for r, w in sp.region_weights.items() if w > 0}
    total = sum(sp.budget.values())
    for (d, r), group in selection.groupby(["digit", "region"]):
        n = len(group)
        for s in STUDY_SPLITS:
            exact = Fraction(sp.budget[s], total) * n
            got = int((group["split"] == s).sum())
            assert math.floor(exact) <= got <= math.ceil(exact), (d, r, s, got, exact)


def test_balanced_selection_on_a_uniform_corpus():
    candidates = uniform_corpus()
    sp = spec(train=120, val=40, test=40, min_easy=3)
    selection, strata, result = S.select(candidates, sp)
    assert result.status == "Optimal" and result.objective == pytest.approx(0)
    assert_constraints_hold(selection, candidates, sp)
    # 200 images, equal per digit (20), split by weight over easy/ambiguous/hard: 7/7/6 or so
    per_cell = selection.groupby(["digit", "region"]).size().unstack(fill_value=0)
    assert (per_cell.sum(axis=1) == 20).all()
    assert per_cell[["easy", "ambiguous", "hard"]].to_numpy().min() >= 5  # hard is capped at 5 available
    assert "other" not in per_cell.columns
    assert strata["count"].sum() == 200
    assert set(strata.columns) == {"split", "digit", "region", "count", "available", "target"}


def test_selection_is_deterministic_and_the_seed_only_changes_the_draw():
    candidates = uniform_corpus()
    a, strata_a, _ = S.select(candidates, spec(seed=1))
    b, _, _ = S.select(candidates, spec(seed=1))
    c, strata_c, _ = S.select(candidates, spec(seed=2))
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(strata_a, strata_c)
    assert set(a["image_id"]) != set(c["image_id"])


@pytest.mark.parametrize("trial", range(40))
def test_random_small_corpora_meet_every_constraint_or_are_refused_with_a_reason(trial):
    # Seeded random corpora (hypothesis is not a dependency); about a third are infeasible.
    rng = np.random.default_rng(trial)
    counts = {
        (d, r): int(rng.integers(2, 30) if r == "easy" else rng.integers(0, 12)) for d in range(10) for r in REGIONS
    }
    weights = {r: float(rng.choice([0.0, 0.5, 1.0, 2.0])) for r in REGIONS}
    weights["easy"] = float(rng.choice([0.5, 1.0]))
    budget = rng.integers(0, 60, size=3)
    budget[0] += 20
    sp = spec(*map(int, budget), min_easy=int(rng.integers(0, 4)), weights=weights, seed=trial)
    candidates = corpus(counts)
    avail = S.availability(candidates)
    try:
        S.check_feasible(avail, sp)
    except S.SelectionInfeasible as err:
        # independently: some necessary condition really fails
        need = sp.min_easy_stratum()
        allowed = sum(n for (d, r), n in counts.items() if weights[r] > 0)
        assert (
            10 * sp.min_easy_per_digit_train > sp.budget["train"]
            or any(counts[d, "easy"] < need for d in range(10))
            or 10 * need > sp.total
            or allowed < sp.total
        ), str(err)
        with pytest.raises(S.SelectionInfeasible):
            S.select(candidates, sp)
        return
    selection, _, result = S.select(candidates, sp)
    assert result.status == "Optimal"
    assert_constraints_hold(selection, candidates, sp)


def test_too_few_easy_images_names_the_digit_and_the_shortfall():
    counts = {(d, r): 40 if r == "easy" else 10 for d in range(10) for r in REGIONS}
    counts[3, "easy"] = 20
    sp = spec(train=180, val=60, test=60, min_easy=15)  # train share 0.6: needs 24 easy per digit
    with pytest.raises(
        S.SelectionInfeasible,
        match=r"min_easy_per_digit_train=15.*at least 24 easy.*digit 3: " r"20 available, short by 4",
    ):
        S.select(corpus(counts), sp)


def test_budget_beyond_the_candidates_says_by_how_much():
    candidates = uniform_corpus(easy=5, ambiguous=2, hard=1, other=50)
    with pytest.raises(S.SelectionInfeasible, match=r"budget 100 .* exceeds the 80 candidates .* short by 20"):
        S.select(candidates, spec(min_easy=0))


def test_train_budget_below_the_easy_minimum():
    with pytest.raises(S.SelectionInfeasible, match=r"need 50 train images, but the train budget is 40: over by 10"):
        S.select(uniform_corpus(), spec(train=40, min_easy=5))


def test_check_selection_catches_a_broken_selection():
    candidates = uniform_corpus()
    sp = spec()
    selection, _, _ = S.select(candidates, sp)
    moved = selection.copy()
    moved.loc[moved.index[0], "split"] = "val" if moved.loc[moved.index[0], "split"] != "val" else "test"
    with pytest.raises(S.SelectionCheckFailed, match="budget"):
        S.check_selection(moved, candidates, sp)
    twice = pd.concat([selection.iloc[:-1], selection.iloc[[0]]], ignore_index=True)
    with pytest.raises(S.SelectionCheckFailed, match="at most once"):
        S.check_selection(twice, candidates, sp)


def test_bad_candidates_are_named():
    candidates = uniform_corpus()
    candidates.loc[3, "region"] = "medium"
    with pytest.raises(ValueError, match="c:0:ambiguous:3.*'medium'"):
        S.select(candidates, spec())
    with pytest.raises(ValueError, match="region_weights"):
        spec(weights={"easy": 1.0, "ambiguous": 1.0})


def test_strata_markdown_lists_every_split():
    candidates = uniform_corpus()
    _, strata, _ = S.select(candidates, spec())
    md = S.strata_markdown(strata, "toy")
    assert "## train (60 images)" in md and "## val (20 images)" in md and "## test (20 images)" in md
    assert "## candidates available" in md


# ------------------------------------------------- region minimums per split


def scarce_hard_corpus(hard_digits=(0, 1, 2)) -> pd.DataFrame:
    """Plenty of easy and ambiguous images, and a single hard image in each of `hard_digits`."""
    counts = {(d, r): {"easy": 30, "ambiguous": 10, "hard": 0, "other": 5}[r] for d in range(10) for r in REGIONS}
    counts.update({(d, "hard"): 1 for d in hard_digits})
    return corpus(counts)


def test_without_a_minimum_the_balanced_program_can_leave_a_split_without_hard_images():
    # Each lone hard image may go to any split (1 x share rounds down or up), and the
    # balance objective does not care which: here none reaches train.
    selection, _, _ = S.select(scarce_hard_corpus(), spec())
    hard = selection[selection["region"] == "hard"]["split"].value_counts()
    assert len(hard) > 0 and hard.sum() == 3
    assert min(hard.get(s, 0) for s in STUDY_SPLITS) == 0


def test_min_per_region_split_puts_hard_and_ambiguous_images_in_every_split():
    candidates = scarce_hard_corpus()
    sp = spec(per_split={"easy": 5, "ambiguous": 5, "hard": 1})
    selection, strata, result = S.select(candidates, sp)
    assert result.status == "Optimal"
    assert_constraints_hold(selection, candidates, sp)
    assert (selection.groupby("split")["region"].apply(lambda r: (r == "hard").sum()) == 1).all()
    broken = selection[~((selection["region"] == "hard") & (selection["split"] == "test"))]
    extra = candidates[(candidates["region"] == "easy") & ~candidates["image_id"].isin(selection["image_id"])]
    broken = pd.concat([broken, extra.iloc[[0]].assign(split="test")], ignore_index=True)
    with pytest.raises(S.SelectionCheckFailed, match="min_per_region_split.*0 hard images in test"):
        S.check_selection(broken, candidates, sp)


def test_too_few_hard_images_for_every_split_is_infeasible_and_names_the_constraint():
    with pytest.raises(
        S.SelectionInfeasible,
        match=r"min_per_region_split\.hard=2 is infeasible: 3 splits x 2 need 6 hard images, "
        r"the corpus has 3: short by 3",
    ):
        S.select(scarce_hard_corpus(), spec(per_split={"hard": 2}))
    # enough hard images in all, but all in one stratum of 10: val (share 0.1) takes at most 1
    concentrated = scarce_hard_corpus(hard_digits=())
    concentrated = pd.concat([concentrated, corpus({(4, "hard"): 10})], ignore_index=True)
    with pytest.raises(
        S.SelectionInfeasible,
        match=r"min_per_region_split\.hard=2 is infeasible for split val: the corpus has 10 hard "
        r"images, of which split val .* at most 1: short by 1",
    ):
        S.select(concentrated, spec(train=80, val=10, test=10, per_split={"hard": 2}))
    with pytest.raises(S.SelectionInfeasible, match=r"min_per_region_split\.other=1 but region other has weight 0"):
        S.select(uniform_corpus(), spec(per_split={"other": 1}))
    with pytest.raises(S.SelectionInfeasible, match=r"asks 30 images of split val, whose budget is 20"):
        S.select(uniform_corpus(), spec(per_split={"easy": 10, "ambiguous": 10, "hard": 10}))
    with pytest.raises(ValueError, match="min_per_region_split"):
        spec(per_split={"medium": 1})
