"""The data-map figure: panels, colour column, region boundaries and counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from softdigits import plots
from softdigits.cartography.maps import Thresholds, assign_regions

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


def test_data_map_png_with_regions(tmp_path):
    path = tmp_path / "map.png"
    plots.plot_data_map(toy_map(), path, thresholds=TH, title="toy", footer="no human labels")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_other_colour_facets_and_subsample(tmp_path):
    df = toy_map()
    plots.plot_data_map(
        df.drop(columns="region"),
        tmp_path / "a.png",
        color="u_mean",
        vmax=None,
        color_label="human uncertainty",
        facet="target",
        thresholds=vars(TH),
        max_points=50,
    )
    plots.plot_data_map(df, tmp_path / "b.png")  # no thresholds: no boundaries
    assert (tmp_path / "a.png").stat().st_size > 0 and (tmp_path / "b.png").stat().st_size > 0


def test_missing_column_is_named_and_nothing_is_written(tmp_path):
    with pytest.raises(KeyError, match="'human'"):
        plots.plot_data_map(toy_map(), tmp_path / "c.png", color="human")
    assert not list(tmp_path.iterdir())
