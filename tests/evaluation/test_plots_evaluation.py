"""Each figure draws its data, with synthetic inputs, deterministically.

The plotted data are read back from the figure that went into the PNG (captured from
save_figure), and each PNG's pixels are checked: not blank, in the series' colours. Each
figure also has a case with other data, which its check must refuse.
"""

import itertools

import numpy as np
import pandas as pd
import pytest
from conftest import colour_pixels, ink_share, png_rgb
from matplotlib import colormaps

from softdigits.corpora import corpus_name
from softdigits.evaluation import metrics as M
from softdigits.evaluation import plots as P
from softdigits.training.models import model_name

MODELS = ["simple_ffn", "lenet"]
TARGETS = ["original", "human_majority", "human_uncertainty"]
TAB10 = [f"C{i}" for i in range(10)]  # matplotlib's default line colours, in plotting order


def saved_one(saved_figures, path):
    """The figure save_figure wrote to `path` (exactly one figure saved)."""
    assert [p for _, p in saved_figures] == [path]
    return saved_figures[0][0]


def assert_png_shows(path, colours, min_pixels=20):
    """The PNG is not blank and has pixels of each colour."""
    rgb = png_rgb(path)
    assert ink_share(rgb) > 0.02, f"{path.name} is (almost) blank"
    for colour in colours:
        assert colour_pixels(rgb, colour) >= min_pixels, f"{path.name} has no {colour} pixels"


def curves(ax) -> dict[str, np.ndarray]:
    """Label -> (n, 2) data of each labelled line of `ax`."""
    return {ln.get_label(): np.asarray(ln.get_xydata(), float) for ln in ax.get_lines() if ln.get_label()[0] != "_"}


# ----------------------------------------------------------------------------- data maps


def toy_maps(seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
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


def assert_data_map_panels(fig, maps, targets):
    """Panel (target, stratum): that target's images of that stratum at (variability,
    confidence), coloured by u_mean, the most uncertain on top; n in the title."""
    axes = np.array(fig.axes[: 2 * len(targets)]).reshape(len(targets), 2)
    for i, target in enumerate(targets):
        for j, stratum in enumerate(P.SHOWN_STRATA):
            ax = axes[i, j]
            want = maps[(maps["target"] == target) & (maps["hlv"] == (stratum == "HLV"))].sort_values("u_mean")
            points = ax.collections[0]
            np.testing.assert_allclose(points.get_offsets(), want[["variability", "confidence"]].to_numpy())
            np.testing.assert_allclose(points.get_array(), want["u_mean"].to_numpy())
            assert ax.get_title() == f"{target} · {stratum} (n={len(want)})"


def test_data_maps_figure(tmp_path, saved_figures):
    maps = toy_maps()
    out = tmp_path / "maps.png"
    kwargs = dict(corpus="mnist", model="lenet", gold="trained_target", footer="Human labels: SIMULATED.")
    returned = P.plot_data_maps(maps, TARGETS, path=out, **kwargs)
    fig = saved_one(saved_figures, out)
    assert fig is returned
    assert_data_map_panels(fig, maps, TARGETS)
    assert "MNIST, LeNet" in fig.get_suptitle() and "trained on" in fig.get_suptitle()
    assert "SIMULATED" in "".join(t.get_text() for t in fig.texts)
    # the colour bar spans u_mean (0 to its maximum), in viridis reversed
    colorbar = fig.axes[-1]
    assert colorbar.get_ylabel() == "human uncertainty u_mean"
    assert colorbar.get_ylim() == pytest.approx((0, maps["u_mean"].max()))
    cmap = colormaps["viridis_r"]
    assert_png_shows(out, [cmap(0.0), cmap(0.5), cmap(1.0)])
    again = tmp_path / "again.png"
    P.plot_data_maps(maps, TARGETS, path=again, **kwargs)
    assert out.read_bytes() == again.read_bytes()


def test_data_maps_check_refuses_other_data(tmp_path):
    maps = toy_maps()
    fig = P.plot_data_maps(
        maps, TARGETS, corpus="mnist", model="lenet", gold="trained_target", footer="x", path=tmp_path / "m.png"
    )
    flipped = maps.assign(hlv=~maps["hlv"])  # strata swapped
    with pytest.raises(AssertionError):
        assert_data_map_panels(fig, flipped, TARGETS)
    other = maps.assign(confidence=maps["confidence"].sample(frac=1, random_state=0).to_numpy())
    with pytest.raises(AssertionError):
        assert_data_map_panels(fig, other, TARGETS)


# ----------------------------------------------------------------------------------- JSD


def toy_jsd(seed=1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        [
            dict(model=m, target=t, seed=s, epoch=e, stratum=st, jsd=rng.uniform(0, 1 / e))
            for m, t, s, e, st in itertools.product(MODELS, TARGETS, (0, 1), range(2, 8), ("HLV", "NoHLV"))
        ]
    )


def assert_jsd_panels(fig, jsd):
    """Panel (model, stratum): per target, the seed mean of each epoch, and a band of ± the std."""
    axes = np.array(fig.axes).reshape(len(MODELS), 2)
    for i, model in enumerate(MODELS):
        for j, stratum in enumerate(P.SHOWN_STRATA):
            ax = axes[i, j]
            assert ax.get_title() == f"{model_name(model)} · {stratum}"
            lines = curves(ax)
            assert list(lines) == TARGETS
            for target, band in zip(TARGETS, ax.collections):
                want = (
                    jsd[(jsd["model"] == model) & (jsd["stratum"] == stratum) & (jsd["target"] == target)]
                    .groupby("epoch")["jsd"]
                    .agg(["mean", "std"])
                )
                np.testing.assert_allclose(lines[target], np.c_[want.index.to_numpy(float), want["mean"]])
                vertices = band.get_paths()[0].vertices
                for epoch, row in want.iterrows():
                    at = vertices[np.isclose(vertices[:, 0], epoch), 1]
                    assert at.min() == pytest.approx(row["mean"] - row["std"])
                    assert at.max() == pytest.approx(row["mean"] + row["std"])


def test_jsd_figure(tmp_path, saved_figures):
    jsd = toy_jsd()
    out = tmp_path / "jsd.png"
    P.plot_jsd(jsd, MODELS, TARGETS, corpus="mnist", footer="x", path=out)
    fig = saved_one(saved_figures, out)
    assert_jsd_panels(fig, jsd)
    assert fig.get_suptitle().endswith(": MNIST")
    assert_png_shows(out, TAB10[: len(TARGETS)])
    # other data (one curve raised) fail the check
    raised = jsd.assign(jsd=np.where(jsd["target"] == "original", jsd["jsd"] + 0.05, jsd["jsd"]))
    with pytest.raises(AssertionError):
        assert_jsd_panels(fig, raised)


# --------------------------------------------------------------------------- reliability


def toy_bins(seed=2):
    rng = np.random.default_rng(seed)
    frames = []
    for m, t, s in itertools.product(MODELS, TARGETS, (0, 1)):
        q = rng.dirichlet(np.ones(10), 50)
        frames.append(M.reliability_bins(q, rng.integers(0, 11, 50), 15).assign(model=m, target=t, seed=s))
    return pd.concat(frames)


def assert_reliability_panels(fig, bins):
    """One panel per model: the diagonal, and per target the pooled (confidence, accuracy) bins."""
    pooled = P.pooled_bins(bins)
    for ax, model in zip(fig.axes, MODELS):
        assert ax.get_title() == model_name(model)
        diagonal = ax.get_lines()[0]
        np.testing.assert_allclose(diagonal.get_xydata(), [[0, 0], [1, 1]])
        lines = curves(ax)
        assert list(lines) == TARGETS
        for target in TARGETS:
            want = pooled[(pooled["model"] == model) & (pooled["target"] == target)]
            np.testing.assert_allclose(lines[target], want[["mean_confidence", "accuracy"]].to_numpy())


def test_reliability_figure(tmp_path, saved_figures):
    bins = toy_bins()
    pooled = P.pooled_bins(bins)
    assert pooled["count"].sum() == len(MODELS) * len(TARGETS) * 2 * 50
    out = tmp_path / "rel.png"
    P.plot_reliability(bins, MODELS, TARGETS, corpus="mnist", footer="x", path=out)
    fig = saved_one(saved_figures, out)
    assert len(fig.axes) == len(MODELS)
    assert_reliability_panels(fig, bins)
    assert_png_shows(out, TAB10[: len(TARGETS)])
    # one seed's bins only: other pooled points
    with pytest.raises(AssertionError):
        assert_reliability_panels(fig, bins[bins["seed"] == 0])


# --------------------------------------------------------------------------- corpus size


def toy_runs(scale=1.0):
    return pd.DataFrame(
        [
            dict(samples_per_digit=n, repetition=r, test_accuracy=scale * (0.9 + 0.001 * n**0.5 + 0.01 * r))
            for n in (50, 100, 150)
            for r in range(3)
        ]
    )


def assert_corpus_size_curve(fig, runs, percent):
    """Mean test accuracy (in %) per size, error bars ± the std over repetitions."""
    ax = fig.axes[0]
    g = runs.groupby("samples_per_digit")["test_accuracy"].agg(["mean", "std"])
    factor = 1.0 if percent else 100.0
    mean, std = g["mean"].to_numpy() * factor, g["std"].to_numpy() * factor
    np.testing.assert_allclose(ax.get_lines()[0].get_xydata(), np.c_[g.index.to_numpy(float), mean])
    _, _, (bars,) = ax.containers[0].lines
    segments = np.asarray(bars.get_segments(), float)  # per size: (x, mean - std), (x, mean + std)
    np.testing.assert_allclose(segments[:, 0, 1], mean - std)
    np.testing.assert_allclose(segments[:, 1, 1], mean + std)
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "test accuracy (%)"


@pytest.mark.parametrize("percent", [False, True], ids=["fraction", "percent"])
def test_corpus_size_figure(tmp_path, saved_figures, percent):
    runs = toy_runs(100.0 if percent else 1.0)
    out = tmp_path / "size.png"
    P.plot_corpus_size(runs, footer="x", path=out)
    fig = saved_one(saved_figures, out)
    assert_corpus_size_curve(fig, runs, percent)
    y = np.asarray(fig.axes[0].get_lines()[0].get_ydata(), float)
    np.testing.assert_allclose(y, [91.70711, 92.0, 92.224745], rtol=1e-6)
    assert fig.axes[0].get_title().endswith("3 repetitions per size")
    assert_png_shows(out, ["C0"])
    # the last repetition dropped: other means and spreads
    with pytest.raises(AssertionError):
        assert_corpus_size_curve(fig, runs[runs["repetition"] < 2], percent)


# ------------------------------------------------------------------------- risk-coverage


def test_risk_coverage_figure_plots_the_seed_mean_of_each_target(tmp_path, saved_figures):
    from softdigits.evaluation import selective

    rng = np.random.default_rng(3)
    targets = TARGETS + ["label_smoothing"]
    frames, by_hand = [], {}
    for m, t, s, st in itertools.product(MODELS, targets, (0, 1, 2), P.RISK_STRATA):
        confidence, error = rng.uniform(size=20), rng.uniform(size=20) < 0.3
        coverage, risk = selective.risk_coverage(confidence, error)
        frames.append(pd.DataFrame(dict(model=m, target=t, seed=s, stratum=st, coverage=coverage, risk=risk)))
        by_hand.setdefault((m, t, st), []).append(risk)
    curves_ = pd.concat(frames, ignore_index=True)
    out = tmp_path / "rc.png"
    # human_shuffled is asked for but was not trained: no curve, no error
    P.plot_risk_coverage(
        curves_, MODELS, targets + ["human_shuffled"], corpus="mnist", footer="Human labels: SIMULATED.", path=out
    )
    fig = saved_one(saved_figures, out)
    axes = np.array(fig.axes).reshape(len(MODELS), len(P.RISK_STRATA))
    for i, m in enumerate(MODELS):
        for j, st in enumerate(P.RISK_STRATA):
            lines = {line.get_label(): line for line in axes[i, j].get_lines()}
            assert sorted(lines) == sorted(targets)
            for k, t in enumerate(targets):
                x, y = lines[t].get_data()
                np.testing.assert_allclose(x, np.arange(1, 21) / 20)
                np.testing.assert_allclose(y, np.mean(by_hand[(m, t, st)], axis=0))
                assert lines[t].get_color() == colormaps["tab10"](k)  # one colour per target, in every panel
            assert axes[i, j].get_title() == f"{model_name(m)} · {st}"
    assert fig.get_suptitle().endswith(f": {corpus_name('mnist')}")
    assert "SIMULATED" in "".join(text.get_text() for text in fig.texts)
    assert_png_shows(out, TAB10[: len(targets)])
    # a curve that differs is drawn differently: the check can fail
    shifted = curves_.assign(risk=np.where(curves_["target"] == "original", curves_["risk"] + 0.1, curves_["risk"]))
    fig2 = P.plot_risk_coverage(shifted, MODELS, targets, corpus="mnist", footer="x", path=tmp_path / "rc2.png")
    y2 = {ln.get_label(): ln.get_ydata() for ln in fig2.axes[0].get_lines()}
    assert not np.allclose(y2["original"], np.mean(by_hand[(MODELS[0], "original", "all")], axis=0))
