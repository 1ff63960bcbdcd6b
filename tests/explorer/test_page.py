"""The explorer page without a browser: it carries the table's numbers (within the stated
quantisation), loads nothing from elsewhere, and its caption says where the labels come from.
The page in a real browser: test_page_browser.py."""

from __future__ import annotations

import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from explorer_fixture import (  # noqa: F401 (fixtures)
    MODELS,
    TARGETS,
    explorer_fixture,
    inputs_fixture,
    page_path_fixture,
)

from softdigits import study_table
from softdigits.explorer.data import build_explorer
from softdigits.explorer.page import (
    P_GOLD_SCALE,
    PROBS_NONE,
    PROBS_SCALE,
    decode_payload,
    page_html,
    undo_differences,
)


@pytest.fixture(scope="module")
def html(page_path):
    return page_path.read_text()


def test_the_payload_carries_the_table(explorer, html):
    meta, blocks = decode_payload(html)
    t = explorer.table
    assert meta["image_id"] == t["image_id"].tolist() and meta["split"] == t["split"].tolist()
    assert np.array_equal(blocks["pixels"], np.stack(t["pixels"].to_numpy()))
    for column in ("label_dist", "soft_label", "soft_label_yes_unc_equal", "soft_label_yes_only"):
        assert np.array_equal(blocks[column], np.stack(t[column].to_numpy()).astype(np.float32)), column
    n = len(t)
    for c, (model, target) in enumerate(meta["cells"]):
        conf = explorer.cell(model, target, "confidence").to_numpy(np.float32)
        assert np.array_equal(blocks["confidence"][c], conf, equal_nan=True)
        probs = blocks["probs"][c]
        expected = explorer.cell(model, target, "probs")
        has = expected.notna().to_numpy()
        assert (probs[~has] == PROBS_NONE).all()
        assert np.abs(probs[has] / PROBS_SCALE - np.stack(expected[has].to_numpy())).max() <= 0.5 / PROBS_SCALE
        p_gold = undo_differences(blocks["p_gold"][c]) / P_GOLD_SCALE
        on_map = np.isfinite(conf)
        assert (
            np.abs(p_gold[on_map] - np.stack(explorer.cell(model, target, "p_gold")[on_map])).max()
            <= 0.5 / P_GOLD_SCALE
        )
    assert [m["id"] for m in meta["models"]] == list(MODELS) and meta["targets"] == list(TARGETS)
    start, codes = blocks["answer_start"], blocks["answer_codes"]
    assert len(start) == n + 1
    for i, row in enumerate(t.itertuples()):
        shown = ["".join("nuy"[k] for k in codes[r]) for r in range(start[i], start[i + 1])]
        assert shown == list(row.answers)
        assert [meta["annotators"][a] for a in blocks["answer_annotator"][start[i] : start[i + 1]]] == list(
            row.annotators
        )


def test_a_shuffled_payload_would_be_caught(explorer, html):
    """The comparison above can fail: the same check on another image's pixels does."""
    _, blocks = decode_payload(html)
    assert not np.array_equal(blocks["pixels"][::-1], np.stack(explorer.table["pixels"].to_numpy()))


def test_the_page_loads_nothing_from_elsewhere(html):
    assert not re.search(r"<script[^>]+src=", html), "a script is loaded from a file or URL"
    assert not re.search(r"<link[^>]+href=", html), "a style sheet or icon is loaded from elsewhere"
    assert not re.search(r"@import|url\(\s*['\"]?https?:", html)
    assert "bokeh-widgets" in html or "Bokeh" in html  # the library is inlined


def header_of(html: str) -> str:
    return html.split('<header class="sdx-header">', 1)[1].split("</header>", 1)[0]


def test_the_caption_says_simulated(html):
    header = header_of(html)
    assert "Human labels: SIMULATED" in header and '"sdx-labels-origin sdx-simulated"' in header


def test_real_labels_are_not_called_simulated(inputs, tmp_path):
    frame = pq.read_table(inputs.study).to_pandas().assign(simulated=False)
    study = tmp_path / "study.parquet"
    study_table.write_study(study_table.to_arrow(frame), study, origin="campaign", info={})
    explorer = build_explorer(inputs.corpus, **(inputs.kwargs() | {"study": study}))
    header = header_of(page_html(explorer))
    assert "SIMULATED" not in header and "real human annotations (imported annotation campaign)" in header


def test_released_labels_make_a_page_without_answers(inputs, tmp_path):
    frame = pq.read_table(inputs.study).to_pandas().assign(simulated=False, n_annotators=None)
    study = tmp_path / "study.parquet"
    study_table.write_study(study_table.to_arrow(frame), study, origin="released", info={})
    explorer = build_explorer(inputs.corpus, **(inputs.kwargs() | {"study": study, "raw_answers": None, "qc": None}))
    html = page_html(explorer)
    meta, blocks = decode_payload(html)
    assert not meta["has_answers"] and meta["annotators"] == [] and not blocks["answer_start"].any()
    assert all(n is None for n in meta["n_annotators"])
    assert "the released soft-digits labels" in header_of(html)
