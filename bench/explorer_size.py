"""How large is an explorer page of the default run, and how fast does it open in Chromium?

Fabricates one study corpus at the default config's size (its selection budget, the training
grid's models x targets x seeds, the dynamics epochs; tests/explorer_fixture.py: made-up
answers, predictions drifting smoothly toward the label), builds its page with the pipeline's
code, and prints the page's size by part, the build time, and in headless Chromium (Debian's,
every network request blocked) the time until the page is interactive and the time a click
takes to show a point's image. The real pages' sizes are in the log of rule explorer
(results/logs/explorer/<corpus>.log); docs/explorer.md lists both. With --page, the same
size by part and timings of a page a run wrote (nothing fabricated).

Run: .venv/bin/python bench/explorer_size.py [--corpus mukhoti] [--keep DIR]
     .venv/bin/python bench/explorer_size.py --page results/explorer/mnist.html
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from explorer_fixture import fabricate  # noqa: E402

from softdigits.explorer import ASSETS  # noqa: E402
from softdigits.explorer.data import build_explorer  # noqa: E402
from softdigits.explorer.page import META_ID, PAYLOAD_ID, _script_text, page_html  # noqa: E402

PACKAGE = REPO / "softdigits" / "explorer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="mnist", help="whose selection budget sets the size")
    parser.add_argument("--keep", type=Path, help="write the inputs and the page here (default: a temporary folder)")
    parser.add_argument("--page", type=Path, help="measure this page a run wrote instead of a fabricated one")
    args = parser.parse_args()
    if args.page:
        html = args.page.read_text()
        print(size_line(html))
        print(browser_timings(args.page.resolve()))
        return
    config = yaml.safe_load((REPO / "workflow_config.yaml").read_text())
    sizes = config["selection"]["corpora"][args.corpus]["budget"]
    t = config["training"]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="explorer-size-"))
    started = time.perf_counter()
    inputs = fabricate(
        folder / "results",
        args.corpus,
        sizes=sizes,
        models=t["models"],
        targets=t["targets"],
        seeds=t["seeds"],
        epochs=t["dynamics"]["epochs"],
    )
    print(
        f"fabricated {sum(sizes.values())} images, {len(inputs.predictions)} runs in {time.perf_counter() - started:.0f} s"
    )
    kwargs = inputs.kwargs() | {"last_epochs": config["evaluation"]["data_map_last_epochs"]}
    started = time.perf_counter()
    explorer = build_explorer(args.corpus, **kwargs)
    built = time.perf_counter() - started
    started = time.perf_counter()
    html = page_html(explorer)
    rendered = time.perf_counter() - started
    page = folder / f"{args.corpus}.html"
    page.write_text(html)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"table built in {built:.1f} s, page rendered in {rendered:.1f} s (peak memory {peak:.0f} MB): {page}")
    print(size_line(html))
    print(browser_timings(page))


def size_line(html: str) -> str:
    return f"page {len(html.encode()) / 1e6:.2f} MB: " + ", ".join(
        f"{name} {n / 1e6:.2f} MB" for name, n in page_parts(html).items()
    )


def page_parts(html: str) -> dict[str, int]:
    """Bytes of the page by part: the payload, its header, the Bokeh document, the page's own
    script and style, and the rest (the inlined Bokeh JavaScript, the header, markup)."""
    parts = {
        "payload (base64 of gzip)": len(_script_text(html, PAYLOAD_ID)),
        "payload header (JSON)": len(_script_text(html, META_ID)),
        "Bokeh document (JSON)": sum(
            len(b) for b in re.findall(r'<script type="application/json" id="[0-9a-f-]{36}">(.*?)</script>', html, re.S)
        ),
        "page script and style": sum(len((PACKAGE / name).read_text()) for name in ASSETS.values()),
    }
    parts["Bokeh's JavaScript and the rest"] = len(html) - sum(parts.values())
    return parts


def browser_timings(page: Path) -> str:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "browser timings skipped: playwright is not installed"
    if not Path("/usr/bin/chromium").exists():
        return "browser timings skipped: no /usr/bin/chromium"
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path="/usr/bin/chromium",
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
            viewport={"width": 1400, "height": 1300},
        )
        requests = []
        context.route(
            "**/*",
            lambda r: r.continue_()
            if r.request.url.startswith("file:")
            else (requests.append(r.request.url), r.abort()),
        )
        tab = context.new_page()
        started = time.perf_counter()
        tab.goto(page.as_uri())
        tab.wait_for_function("window.SDX && SDX.state().ready", timeout=120_000)
        ready = time.perf_counter() - started
        timings = tab.evaluate("SDX.state().timings")
        image_id = tab.evaluate("Bokeh.documents[0].get_model_by_name('points').data.image_id[0]")
        xy = tab.evaluate("id => SDX.pointXY(id)", image_id)
        started = time.perf_counter()
        tab.mouse.click(*xy)
        tab.wait_for_function("() => SDX.state().row !== null", timeout=30_000)
        clicked = time.perf_counter() - started
        started = time.perf_counter()
        tab.evaluate(
            "() => { const m = Bokeh.documents[0].get_model_by_name('model'); m.value = m.options[m.options.length - 1][0]; }"
        )
        switched = time.perf_counter() - started
        context.close()
    return (
        f"Chromium (headless, file://, network blocked: {len(requests)} request(s) attempted): interactive after "
        f"{ready:.1f} s (Bokeh's document ready at {timings['document_ready_ms'] / 1e3:.1f} s, data inflated at "
        f"{timings['inflated_ms'] / 1e3:.1f} s, map drawn at {timings['interactive_ms'] / 1e3:.1f} s); a click shows the "
        f"image in {clicked:.2f} s; switching the model redraws in {switched:.2f} s"
    )


if __name__ == "__main__":
    main()
