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
    maps = pd.DataFrame([dict(target=t, image_id=f"i{i}", confidence=rng.uniform(), variability=rng.uniform(0, .4),
                              hlv=bool(i % 2), u_mean=rng.uniform(0, .3)) for t in TARGETS for i in range(40)])
    out = tmp_path / "maps.png"
    P.plot_data_maps(maps, TARGETS, corpus="mnist", model="lenet", gold="trained_target",
                     footer="Human labels: SIMULATED.", path=out)
    assert is_png(out)
    again = tmp_path / "again.png"
    P.plot_data_maps(maps, TARGETS, corpus="mnist", model="lenet", gold="trained_target",
                     footer="Human labels: SIMULATED.", path=again)
    assert out.read_bytes() == again.read_bytes()


def test_jsd_reliability_and_corpus_size_figures(tmp_path):
    rng = np.random.default_rng(1)
    jsd = pd.DataFrame([dict(model=m, target=t, seed=s, epoch=e, stratum=st, jsd=rng.uniform(0, 1 / e))
                        for m, t, s, e, st in itertools.product(MODELS, TARGETS, (0, 1), range(2, 8), ("HLV", "NoHLV"))])
    P.plot_jsd(jsd, MODELS, TARGETS, corpus="mnist", footer="x", path=tmp_path / "jsd.png")
    assert is_png(tmp_path / "jsd.png")
    frames = []
    for m, t, s in itertools.product(MODELS, TARGETS, (0, 1)):
        q = rng.dirichlet(np.ones(10), 50)
        frames.append(M.reliability_bins(q, rng.integers(0, 11, 50), 15).assign(model=m, target=t, seed=s))
    bins = pd.concat(frames)
    pooled = P.pooled_bins(bins)
    assert pooled["count"].sum() == len(MODELS) * len(TARGETS) * 2 * 50
    P.plot_reliability(bins, MODELS, TARGETS, corpus="mnist", footer="x", path=tmp_path / "rel.png")
    assert is_png(tmp_path / "rel.png")
    runs = pd.DataFrame([dict(samples_per_digit=n, repetition=r, test_accuracy=0.9 + 0.001 * n ** 0.5)
                         for n in (50, 100, 150) for r in range(3)])
    P.plot_corpus_size(runs, footer="x", path=tmp_path / "size.png")
    assert is_png(tmp_path / "size.png")
