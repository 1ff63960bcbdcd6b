"""The findings check gives each claim a verdict that follows the data."""

import itertools

import numpy as np
import pandas as pd

from softdigits import findings as F
from softdigits import stats as S

MODELS = ["simple_ffn", "lenet"]
TARGETS = ["original", "human_majority", "human_equal", "human_uncertainty"]


def run_metrics(soft_helps: bool, seeds=range(6)):
    rng = np.random.default_rng(0)
    rows = []
    gain = {"mnist": 0.01, "mukhoti": 0.06}
    for corpus, model, target, seed in itertools.product(("mnist", "mukhoti"), MODELS, TARGETS, seeds):
        soft = target in F.SOFT_TARGETS
        kl = 0.9 - (0.4 if soft and soft_helps else 0.0) + rng.normal(0, 0.01)
        acc_h = 0.7 + (gain[corpus] if soft and soft_helps else 0.0) + rng.normal(0, 0.002)
        acc_o = acc_h + (0.2 if corpus == "mukhoti" and target == "original" else 0.0)
        for eval_set, metric, value in (("human_soft", "kl", kl), ("human", "accuracy", acc_h),
                                        ("orig", "accuracy", acc_o)):
            for stratum in ("all", "HLV", "NoHLV"):
                rows.append(dict(corpus=corpus, model=model, target=target, seed=seed, split="test",
                                 eval_set=eval_set, stratum=stratum, metric=metric, value=value))
    return pd.DataFrame(rows)


def spearman(soft_best: bool):
    rows = []
    for corpus, model, target, u in itertools.product(("mnist", "mukhoti"), MODELS, TARGETS, ("u_mean", "u_prop")):
        strong = (target in F.SOFT_TARGETS) == soft_best
        rho = -0.5 if strong else (-0.02 if target == "original" else -0.2)
        for variable in ("confidence", "variability"):
            rows.append(dict(corpus=corpus, model=model, target=target, stratum="all", uncertainty=u,
                             variable=variable, rho=rho, p_permutation=0.001))
    return pd.DataFrame(rows)


def studies():
    mnist = pd.DataFrame({"label": [1, 2], "soft_label_argmax": [1, 2], "label_dist": list(np.eye(10)[[1, 2]])})
    synth = np.full((2, 10), 0.1)
    muk = pd.DataFrame({"label": [0, 0], "soft_label_argmax": [0, 3], "label_dist": list(synth)})
    return {"mnist": mnist, "mukhoti": muk}


def check(soft_helps: bool):
    metrics = run_metrics(soft_helps)
    summary = S.seed_summary(metrics, ["corpus", "model", "target", "split", "eval_set", "stratum", "metric"])
    comparisons = [(s, h) for s in F.SOFT_TARGETS for h in F.HARD_TARGETS]
    tests = S.paired_comparisons(metrics, comparisons, alpha=0.05)
    return F.check_findings(metrics, summary, tests, spearman(soft_helps), studies(), modest_pp=2.0)


def test_claims_supported_when_the_data_say_so():
    found = check(soft_helps=True)
    assert [f.verdict for f in found] == ["supported"] * 4


def test_claims_not_supported_when_soft_labels_do_not_help():
    found = check(soft_helps=False)
    verdicts = {f.claim: f.verdict for f in found}
    assert verdicts[found[0].claim] == "not supported"
    assert verdicts[found[3].claim] == "not supported"
    # the synthetic-label claim: (a) still holds, (b) fails; half the conditions is not enough
    assert verdicts[found[2].claim] == "not supported"
    assert "(a) holds for 2 of 2 models, (b) for 0" in found[2].detail


def test_not_testable_without_both_corpora_and_render_says_simulated():
    metrics = run_metrics(True).query("corpus == 'mnist'")
    summary = S.seed_summary(metrics, ["corpus", "model", "target", "split", "eval_set", "stratum", "metric"])
    finding = F.accuracy_gains(summary, 2.0)
    assert finding.verdict == "not testable"
    text = F.render(check(True), {"mnist": "simulated", "mukhoti": "simulated"}, alpha=0.05)
    assert "SIMULATED" in text.splitlines()[2]
    assert text.count("**supported**") == 4
    real = F.preface({"mnist": "campaign"})
    assert "real human annotations" in real and "SIMULATED" not in real
