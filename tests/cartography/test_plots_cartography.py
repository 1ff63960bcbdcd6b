"""The data-map figure: panels, colour column, region boundaries and counts.

The plotted data are read back from the figure save_figure wrote (conftest's
saved_figures), and the PNG's pixels are checked; other data fail each check.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import colour_pixels, ink_share, png_rgb
from matplotlib import colormaps

from softdigits.cartography import plots
from softdigits.cartography.maps import Thresholds, assign_regions
from softdigits.constants import REGIONS

TH = Thresholds(0.8, 0.3, 0.1, 0.2)


def toy_map(n=300, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "confidence": rng.uniform(0, 1, n),
            "variability": rng.uniform(0, 0.45, n),
            "correctness": rng.uniform(0, 1, n),
            "u_mean": rng.uniform(0, 0.3, n),
            "target": rng.choice(["a", "b"], n),
        }
    )
    df["region"] = assign_regions(df["confidence"], df["variability"], TH)
    return df


def assert_points(ax, shown, color):
    """The panel's points: (variability, confidence) of `shown`, coloured by its `color` column."""
    points = ax.collections[0]
    np.testing.assert_allclose(points.get_offsets(), shown[["variability", "confidence"]].to_numpy())
    np.testing.assert_allclose(points.get_array(), shown[color].to_numpy())


def region_counts(ax) -> dict[str, int]:
    """The per-region counts written in the panel ("easy 12", ...)."""
    words = [t.get_text().split() for t in ax.texts]
    return {w[0]: int(w[1]) for w in words if len(w) == 2 and w[0] in REGIONS}


def assert_regions(ax, panel, th):
    """The region boundaries at the thresholds, and the count of each region among all
    the panel's images."""
    want = pd.Series(assign_regions(panel["confidence"], panel["variability"], th)).value_counts()
    assert region_counts(ax) == {r: int(want.get(r, 0)) for r in REGIONS}
    dashed = [np.asarray(ln.get_xydata(), float) for ln in ax.get_lines()]
    assert len(dashed) == 3
    np.testing.assert_allclose(dashed[0][:2], [[0, th.confidence_high], [th.variability_low, th.confidence_high]])
    np.testing.assert_allclose(dashed[1][:2], [[0, th.confidence_low], [th.variability_low, th.confidence_low]])
    np.testing.assert_allclose(dashed[2][:, 0], th.variability_high)  # the vertical line


def test_data_map_png_with_regions(tmp_path, saved_figures):
    df = toy_map()
    path = tmp_path / "map.png"
    plots.plot_data_map(df, path, thresholds=TH, title="toy", footer="no human labels")
    [(fig, saved)] = saved_figures
    assert saved == path
    ax, colorbar = fig.axes
    assert_points(ax, df, "correctness")
    assert ax.collections[0].get_clim() == (0.0, 1.0)
    assert_regions(ax, df, TH)
    assert ax.get_title() == "n = 300"
    assert fig.get_suptitle() == "toy"
    assert "no human labels" in [t.get_text() for t in fig.texts]  # the footer
    assert colorbar.get_ylabel() == "correctness"
    # the PNG: not blank, the viridis points and the black boundaries
    rgb = png_rgb(path)
    assert ink_share(rgb) > 0.05
    for colour in (colormaps["viridis"](0.1), colormaps["viridis"](0.5), colormaps["viridis"](0.9), "black"):
        assert colour_pixels(rgb, colour) >= 20, colour
    # the check refuses other data: points moved, or regions of other thresholds
    other = df.assign(confidence=df["confidence"][::-1].to_numpy())
    with pytest.raises(AssertionError):
        assert_points(ax, other, "correctness")
    with pytest.raises(AssertionError):
        assert_regions(ax, df, Thresholds(0.7, 0.3, 0.1, 0.2))


def test_other_colour_facets_and_subsample(tmp_path, saved_figures):
    df = toy_map()
    plots.plot_data_map(
        df.drop(columns="region"),
        tmp_path / "a.png",
        color="u_mean",
        vmax=None,
        color_label="human uncertainty",
        cmap="magma",
        facet="target",
        thresholds=vars(TH),
        max_points=50,
    )
    plots.plot_data_map(df, tmp_path / "b.png")  # no thresholds: no boundaries
    [(fig_a, path_a), (fig_b, path_b)] = saved_figures
    assert (path_a, path_b) == (tmp_path / "a.png", tmp_path / "b.png")
    *panels, colorbar = fig_a.axes
    assert [ax.get_title() for ax in panels] == [f"target = {k} (n={(df['target'] == k).sum()})" for k in "ab"]
    for ax, key in zip(panels, "ab"):
        sub = df[df["target"] == key].drop(columns="region")
        shown = sub.sample(n=50, random_state=0)  # the seeded subsample of 50 points
        assert_points(ax, shown, "u_mean")
        assert ax.collections[0].get_clim() == pytest.approx((0.0, shown["u_mean"].max()))  # vmax=None: the data's
        assert_regions(ax, sub, TH)  # counts over all the panel's images, not the 50 shown
        with pytest.raises(AssertionError):
            assert_points(ax, sub.head(50), "u_mean")  # not the seeded sample
    assert colorbar.get_ylabel() == "human uncertainty"
    assert colour_pixels(png_rgb(path_a), colormaps["magma"](0.5)) >= 5
    assert colour_pixels(png_rgb(path_a), colormaps["viridis"](0.5)) == 0
    # b: all points, no boundaries and no counts
    ax = fig_b.axes[0]
    assert_points(ax, df, "correctness")
    assert not ax.get_lines() and not region_counts(ax)


def test_missing_column_is_named_and_nothing_is_written(tmp_path):
    with pytest.raises(KeyError, match="'human'"):
        plots.plot_data_map(toy_map(), tmp_path / "c.png", color="human")
    assert not list(tmp_path.iterdir())
