"""The findings check gives each claim a verdict that follows the evidence.

For every claim there is a constructed run where it is supported, one where it is not
reproduced and, where the evidence can be undecided, one where it is inconclusive: no rule
passes whatever the data say, and noise near a bound is neither a pass nor a fail.
"""

import json

import numpy as np
import pandas as pd
import pytest
from findings_fixture import evidence, maps, run_metrics

from softdigits.evaluation import claims as CL
from softdigits.evaluation import conditions as C
from softdigits.evaluation import findings as F


@pytest.fixture(autouse=True)
def fewer_resamples(monkeypatch):
    """Stability from 100 seed resamples instead of 1000: the tests only compare it to 0.8."""
    monkeypatch.setattr(C, "N_RESAMPLES", 100)


@pytest.fixture(scope="module")
def default_maps():
    return maps()


@pytest.fixture(scope="module")
def default_found(default_maps):
    """Every claim on the run where the data support them all (checked once for the module)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(C, "N_RESAMPLES", 100)
        return check(data_maps=default_maps)


def check(metrics=None, data_maps=None, **settings):
    return F.check_findings(evidence(metrics, data_maps, settings))


def claim(key, metrics=None, data_maps=None, **settings):
    """One claim checked (the others are not computed), as check_findings makes it."""
    return F.check_findings(evidence(metrics, data_maps, settings), keys=[key])[0]


def outcomes(finding):
    return [c.outcome for c in finding.conditions]


# ------------------------------------------------------------------ the verdict rules


@pytest.mark.parametrize(
    "outcomes, expected",
    [
        (["holds"] * 4, "supported"),
        (["holds"] * 3 + ["inconclusive"], "partly"),
        (["holds"] * 11 + ["fails"], "partly"),  # all but one: never "supported"
        (["holds", "inconclusive", "inconclusive", "inconclusive"], "inconclusive"),
        (["holds", "holds", "inconclusive", "inconclusive"], "inconclusive"),
        (["fails"] * 3 + ["holds"], "not reproduced"),
        (["holds", "holds", "fails", "fails"], "not reproduced"),
        (["fails", "inconclusive", "fails", "holds"], "not reproduced"),
        ([], "not reproduced"),  # nothing testable is never support
    ],
)
def test_each_verdict_comes_out_of_its_rule(outcomes, expected):
    assert F.verdict(outcomes) == expected


def test_a_claim_the_run_cannot_test_is_not_reproduced_whatever_its_conditions():
    assert F.verdict(["holds"] * 4, not_run=["label_smoothing"]) == "not reproduced"


def test_every_claim_has_its_words_and_every_word_entry_a_claim():
    assert set(CL.words()) == set(CL.CLAIMS)
    for key, text in CL.words().items():
        assert {"claim", "paper", "rule"} <= set(text), key


# ------------------------------------------------------------------ the claims


def test_every_claim_supported_when_the_data_say_so(default_found):
    found = default_found
    assert [f.verdict for f in found] == ["supported"] * 6
    for f in found:
        assert f.conditions and all(c.outcome == "holds" for c in f.conditions), f.key
        assert all(np.isfinite(c.stability) and c.stability >= 0.8 for c in f.conditions), f.key
        assert all(np.isfinite(c.ci_low) and c.ci_low <= c.estimate <= c.ci_high for c in f.conditions), f.key


def test_claim1_not_reproduced_when_soft_labels_raise_kl_and_inconclusive_when_they_do_nothing(default_maps):
    worse = claim("soft_labels_lower_hlv_kl", run_metrics(kl_gain=-0.2), default_maps)
    assert worse.verdict == "not reproduced" and set(outcomes(worse)) == {"fails"}
    same = claim("soft_labels_lower_hlv_kl", run_metrics(kl_gain=0.0), default_maps)
    assert same.verdict == "inconclusive" and outcomes(same).count("inconclusive") >= len(same.conditions) / 2
    assert all(c.ci_low < 0 < c.ci_high for c in same.conditions if c.outcome == "inconclusive")


@pytest.mark.parametrize(
    "gain",
    [
        {"mnist": -0.01, "mukhoti": 0.06},  # a loss on MNIST is not a modest gain
        {"mnist": 0.05, "mukhoti": 0.08},  # 5 points on MNIST is not modest
        {"mnist": 0.01, "mukhoti": 0.003},  # Mukhoti gains less than MNIST
    ],
)
def test_claim2_not_reproduced(gain, default_maps):
    # no synthetic trail: the original-trained Mukhoti runs would otherwise inflate its gain
    found = claim("gains_modest_on_mnist_larger_on_ambiguous", run_metrics(gain=gain, synth_trail=0.0), default_maps)
    assert found.verdict == "not reproduced", found.detail
    assert "fails" in outcomes(found)


def test_claim2_a_gain_on_the_bound_is_inconclusive_not_a_pass_or_a_fail(default_maps):
    # the MNIST gain sits on the 2-point bound with seed noise: its interval straddles it
    found = claim(
        "gains_modest_on_mnist_larger_on_ambiguous",
        run_metrics(gain={"mnist": 0.02, "mukhoti": 0.06}, gain_sd=0.01),
        default_maps,
    )
    modest = [c for c in found.conditions if c.statement.startswith("MNIST gain")]
    assert {c.outcome for c in modest} == {"inconclusive"}
    assert all(c.ci_low < 2.0 < c.ci_high for c in modest)
    assert found.verdict == "inconclusive"
    # the paper's gain (its Table 9) and the ratio are reported beside ours
    assert all(np.isfinite(c.paper) and c.ratio == pytest.approx(c.estimate / c.paper) for c in modest)


def test_claim3_not_reproduced_without_the_crossover(default_maps):
    # synthetic-trained models lead on the original labels but beat the human-trained ones
    # on the human majority too: a label disagreement, not a crossover
    found = claim("synthetic_labels_misaligned", run_metrics(synth_trail=-0.08), default_maps)
    cross = [c for c in found.conditions if "trail" in c.extra]
    assert {c.extra["lead"] for c in cross} == {"holds"} and {c.extra["trail"] for c in cross} == {"fails"}
    assert {c.outcome for c in cross} == {"fails"}
    assert all(c.estimate > 0 for c in cross)  # numbers reported whichever way it comes out
    # the negligible part (b) holds, but cannot carry the claim without its crossover
    assert found.verdict == "not reproduced"


def test_claim3_a_trail_at_a_fraction_of_the_paper_is_told_apart_from_absent(default_maps):
    found = claim(
        "synthetic_labels_misaligned",
        run_metrics(synth_trail=0.004, trail_sd=0.01, gain={"mnist": 0.01, "mukhoti": 0.0}),
        default_maps,
    )
    cross = [c for c in found.conditions if "trail" in c.extra]
    assert {c.extra["lead"] for c in cross} == {"holds"} and "inconclusive" in {c.extra["trail"] for c in cross}
    assert "inconclusive" in {c.outcome for c in cross} and "fails" not in {c.outcome for c in cross}
    # beside each: the paper's margin from its Table 9 and how much of it this run shows
    assert all(c.paper < 0 and abs(c.ratio) < 0.5 for c in cross)


def test_claim3b_a_synthetic_target_that_tracks_human_uncertainty_is_not_negligible():
    found = claim("synthetic_labels_misaligned", data_maps=maps(synthetic_rho=(-0.45, 0.0)))
    confidence = [c for c in found.conditions if "confidence), synthetic" in c.cell["comparison"]]
    assert {c.outcome for c in confidence} == {"fails"}
    assert all(c.ci_high < -0.2 for c in confidence)
    # few images: a small rho is not shown negligible, only not refuted
    small = claim("synthetic_labels_misaligned", data_maps=maps(n=60))
    assert "inconclusive" in outcomes(small)


def test_claim4_not_reproduced_when_another_target_is_stronger_and_inconclusive_when_tied():
    stronger = claim(
        "soft_labels_align_with_human_uncertainty",
        data_maps=maps(rho={"human_uncertainty": -0.2, "human_equal": -0.2, "human_majority": -0.5}),
    )
    assert stronger.verdict == "not reproduced" and set(outcomes(stronger)) == {"fails"}
    tied = claim(
        "soft_labels_align_with_human_uncertainty",
        data_maps=maps(rho={t: -0.35 for t in ("human_uncertainty", "human_equal", "human_majority")}, n=300),
    )
    assert tied.verdict == "inconclusive", outcomes(tied)


def test_claims_5_and_6_not_reproduced_when_the_controls_were_not_run(default_maps):
    found = check(run_metrics(controls=()), default_maps)
    for key in ("human_information_not_softness", "soft_labels_help_selective_prediction"):
        f = next(f for f in found if f.key == key)
        assert f.verdict == "not reproduced" and "Not run" in f.detail and "label_smoothing" in f.detail
    # the paper's claims do not move with the controls
    assert [f.verdict for f in found[:4]] == ["supported"] * 4


def test_claim5_softness_alone_and_better_controls(default_maps):
    same = claim("human_information_not_softness", run_metrics(control_kl=0.0), default_maps)
    assert same.verdict == "inconclusive"
    better = claim("human_information_not_softness", run_metrics(control_kl=-0.1), default_maps)
    assert better.verdict == "not reproduced" and set(outcomes(better)) == {"fails"}


def test_claim6_selective_prediction_verdicts(default_maps):
    worse = claim(
        "soft_labels_help_selective_prediction",
        run_metrics(aurc_gap={t: -0.03 for t in CL.SELECTIVE_CONTROLS}),
        default_maps,
    )
    assert worse.verdict == "not reproduced"
    # label smoothing ranks as well as the human soft label: 2 of 3 controls beaten -> partly
    one_even = claim(
        "soft_labels_help_selective_prediction", run_metrics(aurc_gap={"label_smoothing": 0.0}), default_maps
    )
    assert one_even.verdict == "partly"


def test_one_seed_leaves_the_paired_claims_without_a_test(default_maps):
    kl = claim("soft_labels_lower_hlv_kl", run_metrics(seeds=[0]), default_maps)
    assert kl.verdict == "inconclusive" and all("no paired test" in c.note for c in kl.conditions)


# ------------------------------------------------------------------ the page


def test_the_page_says_simulated_and_writes_every_condition_with_its_numbers(default_found, default_maps):
    found = default_found
    text = F.render(found, {"mnist": "simulated", "mukhoti": "simulated"}, alpha=0.05)
    assert "SIMULATED" in text.splitlines()[2]
    assert "**inconclusive**" in text and "stability" in text and "95% CI" in text
    import re

    assert len(re.findall(r"^## \d\. .*: \*\*supported\*\*$", text, flags=re.M)) == 6
    worse = claim("soft_labels_lower_hlv_kl", run_metrics(kl_gain=-0.2), default_maps)
    failing = F.render([worse], {"mnist": "simulated"}, alpha=0.05)
    assert "## 1. Soft labels lower KL(human || model) on the HLV stratum: **not reproduced**" in failing
    real = F.preface({"mnist": "campaign"})
    assert "real human annotations" in real and "SIMULATED" not in real
    data = json.dumps([f.as_dict() for f in found], allow_nan=False, default=float)
    assert '"verdict": "supported"' in data and '"stability"' in data


def test_most_conditions_fragile_is_said_on_the_page(default_maps):
    noisy = claim("soft_labels_lower_hlv_kl", run_metrics(kl_gain=0.005), default_maps)
    assert "Most conditions are fragile" in noisy.detail and "training.seeds" in noisy.detail


def test_hard_region_share_is_reported_beside_claim_3b():
    thresholds = {"confidence_high": 0.7, "confidence_low": 0.3, "variability_low": 0.1, "variability_high": 0.2}
    maps_frame = pd.DataFrame(
        {
            "corpus": "mukhoti",
            "model": "lenet",
            "hlv": [True, True, True, True, False],
            "target": ["original", "original", "human_uncertainty", "human_uncertainty", "original"],
            "confidence": [0.9, 0.2, 0.1, 0.9, 0.1],
            "variability": [0.05, 0.05, 0.05, 0.05, 0.05],
        }
    )
    share = CL.hard_share(maps_frame, thresholds)
    assert share["lenet", "original"] == pytest.approx(50.0)  # the NoHLV image does not count
    assert share["lenet", "human_uncertainty"] == pytest.approx(50.0)
