"""The explorer stage: one self-contained HTML page per study corpus that links the model
data map to each image, its annotators' answers, its soft labels and the trained models'
predictions (paper Figure 2, for every image).

- `data`: the one table a page is built from (one row per study image), every join checked.
- `page`: the HTML (Bokeh with its JavaScript inlined, the data embedded), and its decoder.

`ASSETS` are the page's own script and style sheet beside this file; the rule lists them as
inputs (the code fingerprint covers Python modules only). This module imports nothing, so the
Snakefile can read it.
"""

from pathlib import Path

ASSETS = {"script": "page.js", "style": "page.css"}


def asset_paths() -> list[str]:
    return [str(Path(__file__).resolve().parent / name) for name in ASSETS.values()]
