"""A real browser for page tests: Debian's chromium (/usr/bin/chromium), headless, driven by
Playwright for Python (pinned in requirements.txt; its own browser download is never used),
with every request outside the allowed URLs (file:// by default) aborted and recorded, and the
page's errors collected.
Screenshots go to test-artifacts/ (gitignored): look at them.

Skips with the reason where playwright or chromium is not installed (.ci/run installs both).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@dataclass
class Browser:
    context: object
    requests: list[str] = field(default_factory=list)  # every non-file:// request the pages attempted
    errors: list[str] = field(default_factory=list)  # uncaught page errors and console errors

    def open(self, path: Path):
        page = self.context.new_page()
        page.on("pageerror", lambda err: self.errors.append(f"page error: {err}"))
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text}"))
        page.goto(Path(path).resolve().as_uri())
        return page


def _route(browser: Browser, allow: tuple[str, ...]):
    def handle(route):
        url = route.request.url
        if url.startswith(allow):
            route.continue_()
        else:
            browser.requests.append(url)
            route.abort()

    return handle


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1300, allow: tuple[str, ...] = ("file://",)) -> Iterator[Browser]:
    """A fresh headless chromium (its own profile folder) that reaches nothing but the URLs
    starting with one of `allow` (file:// for a page that must open from disk)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -r requirements.txt)")
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM} (apt-get install chromium chromium-driver)")
    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": width, "height": height},
        )
        browser = Browser(context)
        context.route("**/*", _route(browser, allow))
        try:
            yield browser
        finally:
            context.close()


def screenshot(page, name: str) -> Path:
    path = ARTIFACTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


# ------------------------------------------------------------------ the explorer page


def explorer_ready(page) -> None:
    """Wait until the explorer page has decoded its data; fail on a load error it reports."""
    page.wait_for_function("window.SDX && SDX.state().ready", timeout=60_000)
    assert page.evaluate("SDX.state().errors") == []


def explorer_click(page, image_id: str) -> None:
    """A real mouse click on the image's point of the data map, then wait until it is shown."""
    x, y = page.evaluate("id => SDX.pointXY(id)", image_id)
    page.mouse.click(x, y)
    page.wait_for_function("id => SDX.state().image_id === id", arg=image_id, timeout=10_000)


def explorer_points(page) -> list[str]:
    return page.evaluate("Bokeh.documents[0].get_model_by_name('points').data.image_id")


def isolated(page, ids: list[str], min_px: float = 15) -> list[str]:
    """The ids whose points lie at least `min_px` from every other point on screen."""
    import numpy as np

    shown = explorer_points(page)
    xy = np.array([page.evaluate("id => SDX.pointXY(id)", i) for i in shown])
    gaps = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) + np.eye(len(shown)) * 1e9
    far = {i for k, i in enumerate(shown) if gaps[k].min() >= min_px}
    return [i for i in ids if i in far]


def shown_numbers(page, series: str) -> list[float]:
    """The values of one label row of the shown image (NaN where the page shows none)."""
    cells = page.locator(f'.sdx-label-table tr[data-series="{series}"] td').all_inner_texts()
    return [float(c) if c != "–" else float("nan") for c in cells]


def shown_answers(page) -> dict[str, tuple[str, bool]]:
    """annotator -> (the ten letters shown, whether the row is marked excluded)."""
    rows = {}
    for row in page.locator(".sdx-answers tr[data-annotator]").all():
        letters = "".join(row.locator("td").nth(k).inner_text() for k in range(1, 11))
        rows[row.get_attribute("data-annotator")] = (letters, "sdx-excluded" in (row.get_attribute("class") or ""))
    return rows
