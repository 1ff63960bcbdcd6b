"""Each figure is written (a PNG), with synthetic inputs, deterministically."""

import itertools

import numpy as np
import pandas as pd

from softdigits import evaluation_plots as P
from softdigits import metrics as M

MODELS = ["simple_ffn", "lenet"]
TARGETS = ["original", "human_majority", "human_uncertainty"]


def is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_maps_figure(tmp_path):
    rng = np.random.default_rng(0)
    maps = pd.DataFrame(
        [
            dict(
                target=t,
                image_id=f"i{i}",
                confidence=rng.uniform(),
                variability=rng.uniform(0, 0.4),
                hlv=bool(i % 2),
                u_mean=rng.uniform(0, 0.3),
            )
            for t in TARGETS
            for i in range(40)
        ]
    )
    out = tmp_path / "maps.png"
    fig = P.plot_data_maps(
        maps, TARGETS, corpus="mnist", model="lenet", gold="trained_target", footer="Human labels: SIMULATED.", path=out
    )
    assert is_png(out)
    # panel (human_majority, HLV): its points are that target's HLV images
    offsets = fig.axes[3].collections[0].get_offsets()
    want = maps[(maps["target"] == "human_majority") & maps["hlv"]].sort_values("u_mean")
    np.testing.assert_allclose(offsets, want[["variability", "confidence"]].to_numpy())
    assert "SIMULATED" in "".join(t.get_text() for t in fig.texts)
    again = tmp_path / "again.png"
    P.plot_data_maps(
        maps,
        TARGETS,
        corpus="mnist",
        model="lenet",
        gold="trained_target",
        footer="Human labels: SIMULATED.",
        path=again,
    )
    assert out.read_bytes() == again.read_bytes()


def test_jsd_reliability_and_corpus_size_figures(tmp_path):
    rng = np.random.default_rng(1)
    jsd = pd.DataFrame(
        [
            dict(model=m, target=t, seed=s, epoch=e, stratum=st, jsd=rng.uniform(0, 1 / e))
            for m, t, s, e, st in itertools.product(MODELS, TARGETS, (0, 1), range(2, 8), ("HLV", "NoHLV"))
        ]
    )
    fig = P.plot_jsd(jsd, MODELS, TARGETS, corpus="mnist", footer="x", path=tmp_path / "jsd.png")
    assert is_png(tmp_path / "jsd.png")
    # the plotted curve is the seed mean of each epoch
    line = {ln.get_label(): ln for ln in fig.axes[1].get_lines()}["human_uncertainty"]  # simple_ffn, HLV
    want = (
        jsd.query("model == 'simple_ffn' and stratum == 'HLV' and target == 'human_uncertainty'")
        .groupby("epoch")["jsd"]
        .mean()
    )
    np.testing.assert_allclose(np.asarray(line.get_xdata(), float), want.index.to_numpy(float))
    np.testing.assert_allclose(np.asarray(line.get_ydata(), float), want.to_numpy())
    frames = []
    for m, t, s in itertools.product(MODELS, TARGETS, (0, 1)):
        q = rng.dirichlet(np.ones(10), 50)
        frames.append(M.reliability_bins(q, rng.integers(0, 11, 50), 15).assign(model=m, target=t, seed=s))
    bins = pd.concat(frames)
    pooled = P.pooled_bins(bins)
    assert pooled["count"].sum() == len(MODELS) * len(TARGETS) * 2 * 50
    fig = P.plot_reliability(bins, MODELS, TARGETS, corpus="mnist", footer="x", path=tmp_path / "rel.png")
    assert is_png(tmp_path / "rel.png")
    lines = {ln.get_label(): ln for ln in fig.axes[1].get_lines()}  # lenet
    want = pooled.query("model == 'lenet' and target == 'original'")
    np.testing.assert_allclose(np.asarray(lines["original"].get_xdata(), float), want["mean_confidence"])
    np.testing.assert_allclose(np.asarray(lines["original"].get_ydata(), float), want["accuracy"])
    runs = pd.DataFrame(
        [
            dict(samples_per_digit=n, repetition=r, test_accuracy=0.9 + 0.001 * n**0.5)
            for n in (50, 100, 150)
            for r in range(3)
        ]
    )
    fig = P.plot_corpus_size(runs, footer="x", path=tmp_path / "size.png")
    assert is_png(tmp_path / "size.png")
    x, y = (np.asarray(v, float) for v in fig.axes[0].get_lines()[0].get_data())
    np.testing.assert_allclose(x, [50, 100, 150])
    np.testing.assert_allclose(y, (0.9 + 0.001 * np.array([50, 100, 150]) ** 0.5) * 100)


def test_risk_coverage_figure_plots_the_seed_mean_of_each_target(tmp_path):
    from softdigits import selective

    rng = np.random.default_rng(3)
    targets = TARGETS + ["label_smoothing"]
    frames, by_hand = [], {}
    for m, t, s, st in itertools.product(MODELS, targets, (0, 1, 2), P.RISK_STRATA):
        confidence, error = rng.uniform(size=20), rng.uniform(size=20) < 0.3
        coverage, risk = selective.risk_coverage(confidence, error)
        frames.append(pd.DataFrame(dict(model=m, target=t, seed=s, stratum=st, coverage=coverage, risk=risk)))
        by_hand.setdefault((m, t, st), []).append(risk)
    curves = pd.concat(frames, ignore_index=True)
    # human_shuffled is asked for but was not trained: no curve, no error
    fig = P.plot_risk_coverage(
        curves,
        MODELS,
        targets + ["human_shuffled"],
        corpus="mnist",
        footer="Human labels: SIMULATED.",
        path=tmp_path / "rc.png",
    )
    assert is_png(tmp_path / "rc.png")
    axes = np.array(fig.axes).reshape(len(MODELS), len(P.RISK_STRATA))
    for i, m in enumerate(MODELS):
        for j, st in enumerate(P.RISK_STRATA):
            lines = {line.get_label(): line for line in axes[i, j].get_lines()}
            assert sorted(lines) == sorted(targets)
            for t in targets:
                x, y = lines[t].get_data()
                np.testing.assert_allclose(x, np.arange(1, 21) / 20)
                np.testing.assert_allclose(y, np.mean(by_hand[(m, t, st)], axis=0))
            assert axes[i, j].get_title() == f"{P.MODEL_NAMES[m]} · {st}"
    assert "SIMULATED" in "".join(text.get_text() for text in fig.texts)
    # a curve that differs is drawn differently: the check can fail
    shifted = curves.assign(risk=np.where(curves["target"] == "original", curves["risk"] + 0.1, curves["risk"]))
    fig2 = P.plot_risk_coverage(shifted, MODELS, targets, corpus="mnist", footer="x", path=tmp_path / "rc2.png")
    y2 = {ln.get_label(): ln.get_ydata() for ln in fig2.axes[0].get_lines()}
    assert not np.allclose(y2["original"], np.mean(by_hand[(MODELS[0], "original", "all")], axis=0))
