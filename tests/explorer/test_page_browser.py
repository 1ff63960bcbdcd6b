"""The explorer page in a real browser (Debian's chromium, headless, through Playwright), opened
from disk with every network request blocked: a click on a point shows that point's image id,
soft label and answers; a val image is found by id; the top-k filter keeps the images the
model disagrees with most. The expected values are read from the input files themselves.
Screenshots: test-artifacts/explorer/ (look at them)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from browser_fixture import (
    chromium,
    explorer_points,
    explorer_ready,
    isolated,
    screenshot,
    shown_answers,
    shown_numbers,
)
from explorer_fixture import (  # noqa: F401 (fixtures)
    EXCLUDED,
    MODELS,
    TARGETS,
    explorer_fixture,
    inputs_fixture,
    page_path_fixture,
)


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def tab(browser):
    """A new tab on the shared browser; the test fails on any page error or outside request."""
    browser.errors.clear()
    browser.requests.clear()
    opened = []
    yield lambda path: opened.append(browser.open(path)) or opened[-1]
    for page in opened:
        page.close()
    assert browser.errors == [], browser.errors
    assert browser.requests == [], f"the page tried to reach {browser.requests}"


def isolated_point(page, inputs) -> str:
    """A point far from the others on screen, among the images the excluded annotator answered."""
    raw = pq.read_table(inputs.raw_answers).to_pandas()
    seen = sorted(set(raw.loc[raw["annotator_id"] == EXCLUDED, "image_id"]))
    candidates = isolated(page, seen)
    assert candidates, "no isolated point the excluded annotator answered"
    return candidates[0]


def test_a_click_shows_that_points_image_labels_and_answers(inputs, page_path, tab):
    model, target = MODELS[0], TARGETS[0]  # the page opens on these
    study = pq.read_table(inputs.study).to_pandas().set_index("image_id")
    raw = pq.read_table(inputs.raw_answers).to_pandas()
    qc = json.loads(inputs.qc.read_text())
    maps = pd.read_parquet(inputs.data_maps[model])
    maps = maps[maps["target"] == target].set_index("image_id")
    page = tab(page_path)
    explorer_ready(page)
    image_id = isolated_point(page, inputs)
    x, y = page.evaluate("id => SDX.pointXY(id)", image_id)
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    assert page.get_by_text(image_id).count() >= 1, "the hover tooltip does not name the point"
    screenshot(page, "explorer/hover.png")
    page.mouse.click(x, y)
    page.wait_for_function("id => SDX.state().image_id === id", arg=image_id, timeout=10_000)
    assert page.locator(".sdx-image-id").inner_text() == image_id
    assert page.locator(".sdx-split").inner_text() == "train"
    for series in ("soft_label", "soft_label_yes_unc_equal", "soft_label_yes_only"):
        assert np.allclose(shown_numbers(page, series), study.loc[image_id, series], atol=5e-4), series
    assert np.allclose(shown_numbers(page, "label_dist")[:10], study.loc[image_id, "label_dist"], atol=5e-4)
    assert float(page.locator(".sdx-confidence").inner_text()) == pytest.approx(
        maps.loc[image_id, "confidence"], abs=5e-4
    )
    answers = raw[(raw["image_id"] == image_id) & ~raw["is_attention_check"]].sort_values("class")
    expected = {
        a: ("".join(r["response"].str[0].str.upper()), a in qc["excluded_annotators"])
        for a, r in answers.groupby("annotator_id")
    }
    assert shown_answers(page) == expected
    assert expected[EXCLUDED][1], "the chosen image has the excluded annotator"
    screenshot(page, "explorer/click.png")


def test_val_images_are_found_by_id_and_top_k_keeps_the_largest_kl(explorer, page_path, tab):
    t = explorer.table
    val_id = t.loc[t["split"] == "val", "image_id"].iloc[0]
    page = tab(page_path)
    explorer_ready(page)
    page.locator("input[type=text]").first.press_sequentially(val_id)
    page.wait_for_function("id => SDX.state().image_id === id", arg=val_id, timeout=10_000)
    assert page.locator(".sdx-split").inner_text() == "val"
    assert "No point on the data map" in page.locator(".sdx-info").inner_text()
    expected = t.set_index("image_id").loc[val_id, "soft_label"]
    assert np.allclose(shown_numbers(page, "soft_label"), expected, atol=5e-4)
    page.locator("select[name=top_k]").select_option(label="top 10 by KL(human ‖ model)")
    page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('points').data.x.length < 10")
    shown = page.evaluate(
        """() => { const d = Bokeh.documents[0];
            return [...d.get_model_by_name('points').data.image_id, ...d.get_model_by_name('others').data.image_id]; }"""
    )
    kl = explorer.cell(MODELS[0], TARGETS[0], "kl")
    top = set(t.loc[kl.sort_values(ascending=False).index[:10], "image_id"])
    assert len(shown) == 10 and set(shown) == top
    screenshot(page, "explorer/top10.png")


def test_a_page_that_reaches_out_is_caught(tmp_path, browser):
    """The network check can fail: a page that loads a remote image is recorded and blocked."""
    page_path = tmp_path / "remote.html"
    page_path.write_text('<html><body><img src="https://example.invalid/x.png"></body></html>')
    browser.requests.clear()
    page = browser.open(page_path)
    page.wait_for_timeout(500)
    page.close()
    assert browser.requests == ["https://example.invalid/x.png"]
    browser.requests.clear()


def test_colour_views_and_a_table_row(explorer, page_path, tab):
    page = tab(page_path)
    explorer_ready(page)
    page.locator("select[name=colour]").select_option(label="HLV / NoHLV")
    page.locator(".sdx-legend", has_text="human label variation").wait_for()
    data = page.evaluate(
        "() => { const d = Bokeh.documents[0].get_model_by_name('points').data;"
        " return {ids: [...d.image_id], colours: [...d.colour]}; }"
    )
    hlv = explorer.table.set_index("image_id")["hlv"]
    expected = ["#d62728" if hlv[i] else "#1f77b4" for i in data["ids"]]
    assert data["colours"] == expected and len(set(expected)) == 2
    first = page.locator(".slick-row").first
    image_id = first.locator(".slick-cell").first.inner_text()
    first.locator(".slick-cell").first.click()
    page.wait_for_function("id => SDX.state().image_id === id", arg=image_id, timeout=10_000)
    assert page.locator(".sdx-image-id").inner_text() == image_id
    assert explorer.table.set_index("image_id").loc[image_id, "split"] in ("val", "test")
    page.locator("select[name=model]").select_option(index=1)  # the shown image stays, its predictions follow
    page.wait_for_function(  # the heat map's title is drawn on the canvas: read it from the model
        "() => Bokeh.documents[0].get_model_by_name('heat_figure').title.text.startsWith('LeNet:')"
    )
    assert page.locator(".sdx-image-id").inner_text() == image_id
    lenet_kl = explorer.cell(MODELS[1], TARGETS[0], "kl")[explorer.table["image_id"] == image_id].iloc[0]
    assert page.locator(".slick-row").first.locator(".slick-cell").last.inner_text() == f"{lenet_kl:.3f}"
    screenshot(page, "explorer/hlv_table_row.png")


def test_points_under_the_cursor_get_one_tooltip_of_the_point_a_click_shows(page_path, tab):
    """At the default run's size dozens of points share the easy corner, and the hover
    stacked a tooltip for each down the page. Five points moved onto one spot: one tooltip,
    naming the point drawn on top, which is the one a click there shows."""
    page = tab(page_path)
    explorer_ready(page)
    ids = explorer_points(page)
    stacked = page.evaluate(
        """() => { const src = Bokeh.documents[0].get_model_by_name('points');
            const x = [...src.data.x], y = [...src.data.y];
            for (let i = 0; i < 5; i++) { x[i] = x[5]; y[i] = y[5]; }
            src.data = {...src.data, x, y};
            return [0, 1, 2, 3, 4, 5].map(i => src.data.image_id[i]); }"""
    )
    assert stacked == ids[:6]
    x, y = page.evaluate("id => SDX.pointXY(id)", stacked[5])
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    named = [i for i in ids if page.get_by_text(i, exact=True).count()]
    assert named == [stacked[5]], named
    screenshot(page, "explorer/stacked_hover.png")
    page.mouse.click(x, y)
    page.wait_for_function("id => SDX.state().image_id === id", arg=stacked[5], timeout=10_000)
