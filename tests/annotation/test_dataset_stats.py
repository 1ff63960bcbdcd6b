"""Table 1, annotations per image and Appendix B proxies on hand-computed cases; the
annotations-per-image histogram draws those counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import REPO, colour_pixels, ink_share, png_rgb

from softdigits.annotation import dataset_stats as ds
from softdigits.io import vectors_column


def study(argmax, label, hlv, u_mean, u_prop, n_ann, soft=None):
    n = len(argmax)
    soft = np.eye(11)[argmax] if soft is None else soft
    return pa.table(
        {
            "image_id": [f"i{k}" for k in range(n)],
            "label": pa.array(label, pa.int64()),
            "soft_label_argmax": pa.array(argmax, pa.int64()),
            "hlv": pa.array(hlv, pa.bool_()),
            "human_uncert_mean": pa.array(u_mean, pa.float64()),
            "pct_ann_unsure": pa.array(u_prop, pa.float64()),
            "n_annotators": pa.array(n_ann, pa.int64()),
            "soft_label": vectors_column(soft.astype(np.float32)),
            "soft_label_yes_unc_equal": vectors_column(soft.astype(np.float32)),
        }
    )


def test_table1_row_hand_computed():
    t = study(
        argmax=[3, 5, 10, 7],
        label=[3, 4, 2, 7],
        hlv=[False, True, False, True],
        u_mean=[0.0, 0.1, 0.0, 0.2],
        u_prop=[0.0, 0.5, 0.0, 1.0],
        n_ann=[6, 6, 5, 7],
    )
    row = ds.table1_row("mnist", t, "simulated")
    assert row["nohlv_pct"] == 50.0 and row["hlv_pct"] == 50.0
    assert row["orig_label_agreement_pct"] == 50.0  # images 0 and 3
    assert row["nan_pct"] == 25.0
    assert row["u_mean"] == pytest.approx(0.075) and row["u_prop"] == pytest.approx(0.375)
    hist = ds.annotations_per_image("mnist", t)
    assert hist[["n_annotators", "n_images"]].values.tolist() == [[5, 1], [6, 2], [7, 1]]


def test_annotations_per_image_empty_when_unknown():
    t = study(argmax=[1], label=[1], hlv=[False], u_mean=[0.0], u_prop=[0.0], n_ann=[None])
    assert ds.annotations_per_image("mnist", t).empty


def test_entropy():
    p = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0.25, 0.25, 0.5]])
    np.testing.assert_allclose(ds.entropy(p), [0.0, np.log(2), 1.5 * np.log(2)])


def test_normalised_reaction_time_divides_by_annotator_median():
    # a: images x, y at 100 and 300 ms per answer (median 200); b: x at 1000 (median 1000)
    raw = pd.DataFrame(
        {
            "annotator_id": ["a", "a", "a", "b"],
            "image_id": ["x", "x", "y", "x"],
            "reaction_time_ms": [100.0, 100.0, 300.0, 1000.0],
        }
    )
    rt = ds.normalised_reaction_time(raw, pd.Index(["x", "y", "z"]))
    assert rt["x"] == pytest.approx((0.5 + 1.0) / 2)
    assert rt["y"] == pytest.approx(1.5)
    assert np.isnan(rt["z"])


def test_correlations_of_monotone_proxies_are_one_and_missing_rt_is_nan():
    soft = np.zeros((5, 11))
    for k in range(5):  # growing spread -> growing entropy
        soft[k, : k + 1] = 1.0 / (k + 1)
    t = study(
        argmax=[0] * 5,
        label=[0] * 5,
        hlv=[True] * 5,
        u_mean=[0, 0.1, 0.2, 0.3, 0.4],
        u_prop=[0, 0.2, 0.4, 0.6, 0.8],
        n_ann=[6] * 5,
        soft=soft,
    )
    corr = ds.correlation_table("mnist", ds.uncertainty_proxies(t, raw=None))
    lookup = {(r.proxy_row[:3], r.proxy_col[:3]): r.spearman_rho for r in corr.itertuples()}
    assert lookup[("(3)", "(2)")] == pytest.approx(1.0)
    assert lookup[("(4)", "(2)")] == pytest.approx(1.0)
    assert lookup[("(5)", "(4)")] == pytest.approx(1.0)
    assert np.isnan(lookup[("(1)", "(1)")])  # no reaction times without raw answers
    assert len(corr) == 15  # lower triangle with diagonal
    text = ds.correlation_matrix_markdown(corr)
    assert "| mnist |" in text and "Spearman" in text


def test_compare_with_paper_keeps_both_sources():
    ours = pd.DataFrame(
        [
            {
                "corpus": "mnist",
                "labels": "simulated",
                "n_images": 10,
                "nohlv_pct": 70.0,
                "hlv_pct": 30.0,
                "orig_label_agreement_pct": 95.0,
                "nan_pct": 0.0,
                "u_mean": 0.02,
                "u_prop": 0.1,
            }
        ]
    )
    paper = pd.read_csv(REPO / "resources/annotation/paper_table1.csv")
    both = ds.compare_with_paper(ours, paper)
    assert both["source"].tolist() == ["paper Table 1 (human annotators)", "this run (simulated labels)"]
    assert both.loc[0, "hlv_pct"] == pytest.approx(39.63)


# ------------------------------------------------------------- annotations-per-image figure


def two_corpora_counts():
    """mnist: 5 annotators x1, 6 x2, 7 x1; mukhoti: 6 annotators x3, 8 x1 (from study tables)."""
    mnist = study(
        argmax=[1] * 4, label=[1] * 4, hlv=[False] * 4, u_mean=[0.0] * 4, u_prop=[0.0] * 4, n_ann=[6, 5, 6, 7]
    )
    mukhoti = study(
        argmax=[1] * 4, label=[1] * 4, hlv=[True] * 4, u_mean=[0.1] * 4, u_prop=[0.5] * 4, n_ann=[6, 8, 6, 6]
    )
    return pd.concat([ds.annotations_per_image("mnist", mnist), ds.annotations_per_image("mukhoti", mukhoti)])


def assert_histogram_bars(ax, per_image):
    """One bar group per corpus (legend = corpus), side by side at each annotator count:
    x = n_annotators shifted by the corpus's slot, height = n_images."""
    corpora = list(dict.fromkeys(per_image["corpus"]))
    width = 0.8 / len(corpora)
    assert [c.get_label() for c in ax.containers] == corpora
    assert [t.get_text() for t in ax.get_legend().get_texts()] == corpora
    for k, (corpus, bars) in enumerate(zip(corpora, ax.containers)):
        want = per_image[per_image["corpus"] == corpus]
        centres = [b.get_x() + b.get_width() / 2 for b in bars]
        np.testing.assert_allclose(centres, want["n_annotators"] + (k - (len(corpora) - 1) / 2) * width)
        np.testing.assert_allclose([b.get_height() for b in bars], want["n_images"])
        np.testing.assert_allclose([b.get_width() for b in bars], width)
        assert len({b.get_facecolor() for b in bars}) == 1  # one colour per corpus


def test_histogram_draws_each_corpus_counts(tmp_path, saved_figures):
    per_image = two_corpora_counts()
    assert per_image.values.tolist() == [
        ["mnist", 5, 1],
        ["mnist", 6, 2],
        ["mnist", 7, 1],
        ["mukhoti", 6, 3],
        ["mukhoti", 8, 1],
    ]
    out = tmp_path / "per_image.png"
    ds.histogram_png(per_image, "SIMULATED annotators", out)
    [(fig, path)] = saved_figures
    assert path == out
    ax = fig.axes[0]
    assert_histogram_bars(ax, per_image)
    assert ax.get_title() == "Labels from SIMULATED annotators"
    assert ax.get_xlabel().startswith("annotations per image") and ax.get_ylabel() == "images"
    # the PNG: not blank, bars in the first two colours of the cycle
    rgb = png_rgb(out)
    assert ink_share(rgb) > 0.05
    assert colour_pixels(rgb, "C0") > 500 and colour_pixels(rgb, "C1") > 500
    assert colour_pixels(rgb, "C2") == 0  # two corpora: no third colour


def test_histogram_of_other_counts_fails_the_check(tmp_path, saved_figures):
    per_image = two_corpora_counts()
    ds.histogram_png(per_image, "x", tmp_path / "h.png")
    ax = saved_figures[0][0].axes[0]
    other = per_image.assign(n_images=per_image["n_images"][::-1].to_numpy())
    with pytest.raises(AssertionError):
        assert_histogram_bars(ax, other)
    with pytest.raises(AssertionError):
        assert_histogram_bars(ax, per_image[per_image["corpus"] == "mnist"])


def test_histogram_without_per_annotator_data_says_so(tmp_path, saved_figures):
    released = study(argmax=[1], label=[1], hlv=[False], u_mean=[0.0], u_prop=[0.0], n_ann=[None])
    per_image = ds.annotations_per_image("mnist", released)
    note = "the released soft-digits aggregates (human annotators; no per-annotator data)"
    ds.histogram_png(per_image, note, tmp_path / "h.png")
    ax = saved_figures[0][0].axes[0]
    assert not ax.containers and ax.get_legend() is None
    assert [t.get_text() for t in ax.texts] == ["not available: no per-annotator data"]
    assert ax.get_title() == note  # 60 characters or more: the note alone
    rgb = png_rgb(tmp_path / "h.png")
    assert 0 < ink_share(rgb) and colour_pixels(rgb, "C0") == 0  # text and axes, no bars
