"""The explorer stage through the Snakemake CLI on the tiny config.

`test_explorer_rule_on_fabricated_inputs` feeds rule explorer inputs made here
(tests/explorer_fixture.py, so it runs whatever the upstream stages do), checks that it
writes the page, that a finished run has nothing left to do, and that the
report holds the page under "Explorer" and opens it there (in Chromium). `test_tiny_run_writes_an_explorer_page` checks the
pages of the real tiny-config workflow (the session's tiny run: one per study corpus), in the
browser too.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from browser_fixture import (
    chromium,
    explorer_click,
    explorer_points,
    explorer_ready,
    isolated,
    screenshot,
    shown_numbers,
)
from conftest import dry_run_jobs, snakemake
from explorer_fixture import MODELS, SEEDS, TARGETS, fabricate

from softdigits.explorer.page import decode_payload


def study_corpora(workdir) -> list[str]:
    config = yaml.safe_load((workdir / "workflow_config.yaml").read_text())
    overlay = yaml.safe_load((workdir / "config/test.yaml").read_text())
    return (overlay.get("study") or config["study"])["corpora"]


def check_page(workdir, corpus: str) -> dict:
    """The page's header, after checking that it holds every study image once, in order."""
    html = (workdir / f"results-test/explorer/{corpus}.html").read_text()
    meta, blocks = decode_payload(html)
    study = pq.read_table(workdir / f"results-test/study/{corpus}.parquet", columns=["image_id", "pixels"])
    assert meta["image_id"] == study.column("image_id").to_pylist()
    assert np.array_equal(blocks["pixels"], np.stack(study.column("pixels").to_numpy(zero_copy_only=False)))
    assert "Human labels: SIMULATED" in html.split('<header class="sdx-header">', 1)[1].split("</header>", 1)[0]
    return meta


@pytest.mark.workflow
def test_explorer_rule_on_fabricated_inputs(workflow_copy):
    overlay_path = workflow_copy / "config/test.yaml"
    overlay = yaml.safe_load(overlay_path.read_text())
    overlay["training"] = {
        **overlay["training"],
        "models": list(MODELS),
        "targets": list(TARGETS),
        "seeds": list(SEEDS),
    }
    # the config check wants every compared target trained: keep the comparisons within the grid
    overlay["evaluation"]["comparisons"] = [["human_uncertainty", "human_majority"], ["human_uncertainty", "original"]]
    overlay_path.write_text(yaml.safe_dump(overlay))
    corpora = study_corpora(workflow_copy)[:1]  # one is enough here; the tiny run has them all
    for corpus in corpora:
        fabricate(workflow_copy / "results-test", corpus)
    pages = [f"results-test/explorer/{c}.html" for c in corpora]
    snakemake(workflow_copy, "--cores", "2", "--allowed-rules", "explorer", "--rerun-triggers", "mtime", "--", *pages)
    for corpus in corpora:
        meta = check_page(workflow_copy, corpus)
        assert [m["id"] for m in meta["models"]] == list(MODELS) and meta["targets"] == list(TARGETS)
        thresholds = yaml.safe_load((workflow_copy / "config/test.yaml").read_text())["cartography"]["corpora"]
        assert meta["thresholds"] == thresholds[corpus]["thresholds"]  # the corpus's own region boundaries
        log = (workflow_copy / f"results-test/logs/explorer/{corpus}.log").read_text()
        assert "page" in log and "MB" in log
    assert dry_run_jobs(workflow_copy, "--allowed-rules", "explorer", "--", *pages) == {}
    # The report as a zip (results stored as files beside report.html): Chromium refuses data:
    # URLs over 2 MB, which is how a report.html embeds each result (docs/explorer.md).
    snakemake(
        workflow_copy,
        "--allowed-rules",
        "explorer",
        "--rerun-triggers",
        "mtime",
        "--report",
        "results-test/report.zip",
        "--",
        *pages,
    )
    with zipfile.ZipFile(workflow_copy / "results-test/report.zip") as archive:
        archive.extractall(workflow_copy / "results-test/report")
    report = workflow_copy / "results-test/report/report/report.html"
    text = report.read_text()
    assert "Explorer" in text and "SIMULATED" in text
    assert "system-message" not in text, "the explorer caption is not valid reStructuredText"
    with chromium() as browser:
        page = browser.open(report)
        page.get_by_text("Results", exact=True).first.click()
        page.get_by_text("Explorer", exact=True).first.click()
        page.locator("tr", has_text=corpora[0]).locator("a[iconname=eye]").click()
        page.wait_for_function(
            "name => [...document.querySelectorAll('iframe')].some(f => f.src.endsWith('/' + name))",
            arg=f"{corpora[0]}.html",
            timeout=30_000,
        )
        inner = next(f for f in page.frames if f.url.endswith(f"/{corpora[0]}.html"))
        inner.wait_for_function("window.SDX && SDX.state().ready", timeout=60_000)
        screenshot(page, "explorer/in_the_report.png")
        assert browser.errors == [] and browser.requests == []


@pytest.mark.workflow
def test_tiny_run_writes_an_explorer_page(tiny_run):
    for corpus in study_corpora(tiny_run):
        check_page(tiny_run, corpus)
    corpus = study_corpora(tiny_run)[0]
    study = pq.read_table(tiny_run / f"results-test/study/{corpus}.parquet").to_pandas().set_index("image_id")
    with chromium() as browser:
        page = browser.open(tiny_run / f"results-test/explorer/{corpus}.html")
        explorer_ready(page)
        candidates = isolated(page, explorer_points(page))
        assert candidates, "every point of the tiny run's map overlaps another"
        image_id = candidates[0]
        explorer_click(page, image_id)
        assert page.locator(".sdx-image-id").inner_text() == image_id
        assert np.allclose(shown_numbers(page, "soft_label"), study.loc[image_id, "soft_label"], atol=5e-4)
        screenshot(page, f"explorer/tiny_run_{corpus}.png")
        assert browser.errors == [] and browser.requests == []
