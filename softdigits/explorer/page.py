"""The explorer page of one corpus: a single HTML file that opens from disk, with no server and
no network.

Library: Bokeh (pinned in requirements.txt and envs/plots.yaml) with `bokeh.resources.INLINE`,
so its JavaScript is part of the file, never fetched from a CDN. Chosen over the other two
candidates by what the page needs and what it weighs: Bokeh's inlined JavaScript (core +
widgets + tables) is 1.95 MB, Plotly's plotly.min.js alone 4.8 MB (plotly 6.5.0). Vega-Lite's
is smaller, but here one click drives a dozen views (the image, bars, a heat map, curves, the
answer matrix), which Vega-Lite's declarative selections do not do without hand-written
JavaScript anyway, and inlining its bundles needs vl-convert besides. Bokeh's
ColumnDataSources and CustomJS callbacks do exactly that, and its image glyph draws a 28 x 28
digit pixelated (no smoothing).

Size, measured (docs/explorer.md; bench/explorer_size.py): 2.1-2.2 MB for the tiny config's
100-image pages, 6.9 MB for a synthetic corpus of the default run's size (3,045 images, 108
runs, 40 epochs), interactive in headless Chromium after about 3 s.

The data ride in the page as one gzip-compressed binary payload (base64 in a
`<script type="application/octet-stream">`; the browser inflates it with DecompressionStream)
plus a JSON header that describes each block (`payload`; `decode_payload` reads it back):

- pixels (uint8), the original and the three human soft labels, u_mean and u_prop
  (float32: exact to the study table's float32);
- per (model, target): data-map confidence, variability and KL(human || model) as float32
  (NaN: none); the mean predicted distributions as uint16 codes, p * 10,000 rounded (error
  <= 0.00005; PROBS_NONE: no prediction); per-epoch mean p(gold) as uint8 codes, p * 250
  rounded (error <= 0.002, below what a curve shows), stored as differences from epoch to
  epoch, which gzip packs about a quarter tighter (0 where the image has no point); the map
  region as a code (REGION_NONE: no point);
- the answers: a (rows, 10) code matrix (no / unsure / yes), the annotator of each row, and
  each image's first row.

The page's behaviour is in page.js beside this file, its style in page.css (both inlined).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
from pathlib import Path

import numpy as np
from bokeh.palettes import Category10, Viridis256

from softdigits import io
from softdigits.constants import N_DIGITS, NOT_A_DIGIT, REGIONS, STUDY_SPLITS
from softdigits.corpora import corpus_name
from softdigits.evaluation.dynamics import GOLD_NOTES, NO_GOLD
from softdigits.explorer import ASSETS
from softdigits.explorer.data import Explorer
from softdigits.training.models import model_name

PROBS_SCALE = 10_000  # uint16 code of a probability (0.0001 steps); PROBS_NONE: no prediction
PROBS_NONE = 65535
P_GOLD_SCALE = 250  # uint8 code of a per-epoch p(gold) (0.004 steps), stored as epoch-to-epoch differences
REGION_NONE = 255
TOP_K = (10, 25, 50, 100, 250)  # choices of the "where the models disagree most" filter
PAYLOAD_ID = "sdx-payload"
META_ID = "sdx-meta"
ALIGN = 8  # bytes: every block starts at a multiple, so the browser can view it in place
HLV_COLOURS = {"HLV": "#d62728", "NoHLV": "#1f77b4"}
REGION_COLOURS = {"easy": "#2ca02c", "ambiguous": "#ff7f0e", "hard": "#d62728", "other": "#7f7f7f"}
SERIES_COLOURS = ("#7f7f7f", "#1f77b4", "#2ca02c", "#9467bd")  # original, s_u, s_equal, s_yes
LABEL_SERIES = {
    "label_dist": "original label distribution",
    "soft_label": "human, uncertainty-weighted (unsure = 1/2)",
    "soft_label_yes_unc_equal": "human, equal (unsure = yes)",
    "soft_label_yes_only": "human, yes only",
}
CLASS_NAMES = [str(d) for d in range(N_DIGITS)] + ["not a digit"]


# ------------------------------------------------------------------ payload


def _quantise(values: np.ndarray, scale: int, none: int, dtype) -> np.ndarray:
    out = np.full(values.shape, none, dtype=dtype)
    ok = np.isfinite(values)
    out[ok] = np.rint(np.clip(values[ok], 0.0, 1.0) * scale).astype(dtype)
    return out


def _differences(codes: np.ndarray) -> np.ndarray:
    """Codes along the last axis as differences modulo 256 (the first kept): smooth per-epoch
    curves become runs of small numbers, which gzip stores in about 3/4 of the space."""
    return np.diff(codes, axis=-1, prepend=np.zeros_like(codes[..., :1])).astype(np.uint8)


def undo_differences(stored: np.ndarray) -> np.ndarray:
    """The codes back from `_differences` (the page's script does the same)."""
    return np.cumsum(stored, axis=-1, dtype=np.uint64).astype(np.uint8)


def _stack(cells: list, shape: tuple[int, ...]) -> np.ndarray:
    """Cells of arrays (or None) as one float array, NaN where None."""
    out = np.full((len(cells), *shape), np.nan)
    for i, v in enumerate(cells):
        if v is not None:
            out[i] = v
    return out


def payload(explorer: Explorer) -> tuple[dict, bytes]:
    """(header, gzip-compressed blocks) of the page: see the module docstring."""
    t = explorer.table
    n = len(t)
    cells = [(m, g) for m in explorer.models for g in explorer.targets]
    n_epochs = len(explorer.epochs)
    blocks: dict[str, np.ndarray] = {
        "pixels": np.stack(t["pixels"].to_numpy()).astype(np.uint8) if n else np.zeros((0, 784), np.uint8),
        "u_mean": t["human_uncert_mean"].to_numpy(dtype=np.float32),
        "u_prop": t["pct_ann_unsure"].to_numpy(dtype=np.float32),
    }
    for column in LABEL_SERIES:
        blocks[column] = np.stack(t[column].to_numpy()).astype(np.float32)
    probs, p_gold = np.zeros((len(cells), n, N_DIGITS)), np.zeros((len(cells), n, n_epochs))
    conf, var, kl = (np.zeros((len(cells), n), np.float32) for _ in range(3))
    gold = np.zeros((len(cells), n), np.int8)
    region = np.zeros((len(cells), n), np.uint8)
    for c, (model, target) in enumerate(cells):
        probs[c] = _stack(list(explorer.cell(model, target, "probs")), (N_DIGITS,))
        p_gold[c] = _stack(list(explorer.cell(model, target, "p_gold")), (n_epochs,))
        conf[c] = explorer.cell(model, target, "confidence").to_numpy(dtype=np.float32)
        var[c] = explorer.cell(model, target, "variability").to_numpy(dtype=np.float32)
        kl[c] = explorer.cell(model, target, "kl").to_numpy(dtype=np.float32)
        gold[c] = explorer.cell(model, target, "gold").to_numpy(dtype=np.int8)
        names = explorer.cell(model, target, "map_region").to_numpy()
        region[c] = [REGIONS.index(r) if r else REGION_NONE for r in names]
    blocks |= {
        "probs": _quantise(probs, PROBS_SCALE, PROBS_NONE, np.uint16),
        "p_gold": _differences(_quantise(p_gold, P_GOLD_SCALE, 0, np.uint8)),
        "confidence": conf,
        "variability": var,
        "kl": kl,
        "gold": gold,
        "map_region": region,
    }
    annotators = sorted({a for row in t["annotators"] for a in row})
    index = {a: i for i, a in enumerate(annotators)}
    excluded = {a for row_a, row_e in zip(t["annotators"], t["excluded"]) for a, e in zip(row_a, row_e) if e}
    letters = {"n": 0, "u": 1, "y": 2}
    rows = [answer for row in t["answers"] for answer in row]
    blocks |= {
        "answer_codes": np.array([[letters[ch] for ch in a] for a in rows], np.uint8).reshape(len(rows), N_DIGITS),
        "answer_annotator": np.array([index[a] for row in t["annotators"] for a in row], np.int32),
        "answer_start": np.concatenate([[0], np.cumsum([len(row) for row in t["annotators"]])]).astype(np.int32),
    }
    raw, layout = bytearray(), {}
    for name, array in blocks.items():
        array = np.ascontiguousarray(array)
        raw += b"\0" * (-len(raw) % ALIGN)
        layout[name] = {"dtype": array.dtype.name, "shape": list(array.shape), "offset": len(raw)}
        raw += array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    header = {
        "blocks": layout,
        "n_bytes": len(raw),
        "corpus": explorer.corpus,
        "corpus_name": corpus_name(explorer.corpus),
        "labels_origin": explorer.labels_origin,
        "labels_sentence": explorer.labels_sentence,
        "simulated": explorer.labels_origin == "simulated",
        "models": [{"id": m, "name": model_name(m)} for m in explorer.models],
        "targets": list(explorer.targets),
        "cells": [list(c) for c in cells],
        "seeds": list(explorer.seeds),
        "epochs": [int(e) for e in explorer.epochs],
        "last_epochs": explorer.last_epochs,
        "gold_note": GOLD_NOTES.get(explorer.data_map_gold, explorer.data_map_gold),
        "human_soft_label": explorer.human_soft_label,
        "thresholds": vars(explorer.thresholds) if explorer.thresholds else None,
        "regions": list(REGIONS),
        "splits": list(STUDY_SPLITS),
        "not_a_digit": NOT_A_DIGIT,
        "no_gold": NO_GOLD,
        "probs_scale": PROBS_SCALE,
        "probs_none": PROBS_NONE,
        "p_gold_scale": P_GOLD_SCALE,
        "region_none": REGION_NONE,
        "has_answers": explorer.has_answers,
        "n_excluded": explorer.n_excluded,
        "annotators": annotators,
        "excluded_annotators": sorted(excluded),
        "image_id": t["image_id"].tolist(),
        "source": t["source"].tolist(),
        "split": t["split"].tolist(),
        "region": t["region"].tolist(),
        "hlv": t["hlv"].astype(bool).tolist(),
        "label": t["label"].astype(int).tolist(),
        "majority": t["soft_label_argmax"].astype(int).tolist(),
        "n_annotators": [None if v != v else int(v) for v in t["n_annotators"].astype(float)],
        "top_k": list(TOP_K),
        "colours": {"hlv": HLV_COLOURS, "region": REGION_COLOURS, "series": dict(zip(LABEL_SERIES, SERIES_COLOURS))},
        "label_series": LABEL_SERIES,
        "class_names": CLASS_NAMES,
        "viridis": list(Viridis256),
        "target_colours": list(Category10[10]),
    }
    return header, gzip.compress(bytes(raw), compresslevel=6, mtime=0)  # level 9: 1% smaller, 6x slower


def decode_payload(html: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and the blocks of a written page, as the browser decodes them."""
    meta = json.loads(_script_text(html, META_ID))
    raw = gzip.decompress(base64.b64decode(_script_text(html, PAYLOAD_ID)))
    arrays = {}
    for name, block in meta["blocks"].items():
        dtype = np.dtype(block["dtype"]).newbyteorder("<")
        count = int(np.prod(block["shape"])) if block["shape"] else 1
        arrays[name] = np.frombuffer(raw, dtype, count, block["offset"]).reshape(block["shape"])
    return meta, arrays


def _script_text(html: str, element_id: str) -> str:
    found = re.search(rf'<script type="[^"]+" id="{element_id}">(.*?)</script>', html, re.S)
    if not found:
        raise ValueError(f"the page has no <script id={element_id!r}>")
    return found.group(1).strip()


def _json_for_script(obj) -> str:
    """JSON safe inside <script>: no '</' can close the element early."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


# ------------------------------------------------------------------ the Bokeh document


def _document(meta: dict):
    from bokeh.document import Document
    from bokeh.layouts import column, row
    from bokeh.models import (
        AutocompleteInput,
        BoxAnnotation,
        CheckboxButtonGroup,
        ColumnDataSource,
        CustomJS,
        CustomJSHover,
        DataTable,
        Div,
        FactorRange,
        HoverTool,
        Label,
        LinearColorMapper,
        NumberFormatter,
        Select,
        TableColumn,
        TapTool,
    )
    from bokeh.palettes import Blues256, Greys256
    from bokeh.plotting import figure
    from bokeh.transform import dodge

    refresh = CustomJS(code="SDX.refresh()")
    models = [(m["id"], m["name"]) for m in meta["models"]]
    model = Select(title="Model", options=models, value=models[0][0] if models else "", name="model", width=150)
    target = Select(
        title="Training target", options=meta["targets"], value=(meta["targets"] or [""])[0], name="target", width=170
    )
    colour = Select(
        title="Colour by",
        options=[
            ("u_mean", "human uncertainty u_mean"),
            ("hlv", "HLV / NoHLV"),
            ("map_region", "region on this map"),
            ("region", "selection region (corpus map)"),
        ],
        value="u_mean",
        name="colour",
        width=210,
    )
    show = Select(
        title="Images",
        options=[("all", "all that pass the filters")]
        + [(str(k), f"top {k} by KL(human ‖ model)") for k in meta["top_k"]],
        value="all",
        name="top_k",
        width=210,
    )
    splits = CheckboxButtonGroup(labels=meta["splits"], active=list(range(len(meta["splits"]))), name="splits")
    strata = CheckboxButtonGroup(labels=["HLV", "NoHLV"], active=[0, 1], name="strata")
    regions = CheckboxButtonGroup(labels=meta["regions"], active=list(range(len(meta["regions"]))), name="regions")
    search = AutocompleteInput(
        title="Find an image by id (any split)",
        completions=meta["image_id"],
        search_strategy="includes",
        case_sensitive=False,
        min_characters=2,
        max_completions=20,
        name="search",
        width=300,
    )
    for widget in (model, target, colour, show):
        widget.js_on_change("value", refresh)
    for widget in (splits, strata, regions):
        widget.js_on_change("active", refresh)
    # as one types: an exact id, or text that only one id contains, shows that image
    search.js_on_change("value_input", CustomJS(code="SDX.search(cb_obj.value_input)"))
    search.js_on_change("value", CustomJS(code="SDX.search(cb_obj.value)"))

    points = ColumnDataSource(
        {k: [] for k in ("x", "y", "row", "colour", "image_id", "split", "u_mean", "kl", "region")}, name="points"
    )
    chosen = ColumnDataSource({"x": [], "y": []}, name="chosen")
    data_map = figure(
        width=600,
        height=540,
        x_range=(0, 0.5),
        y_range=(0, 1),
        x_axis_label="variability (std of p(gold))",
        y_axis_label="confidence (mean p(gold))",
        tools="pan,wheel_zoom,box_zoom,reset",
        name="data_map",
        title="Model data map",
    )
    dots = data_map.scatter(
        "x", "y", source=points, size=7, fill_color="colour", line_color=None, fill_alpha=0.85, name="dots"
    )
    dots.nonselection_glyph = None
    dots.selection_glyph = None
    data_map.scatter("x", "y", source=chosen, size=16, fill_color=None, line_color="black", line_width=2.5)
    thresholds = meta["thresholds"]
    if thresholds:
        t = thresholds
        lines = {
            "x0": [t["variability_high"], t["variability_low"], t["variability_low"], 0, 0],
            "x1": [
                t["variability_high"],
                t["variability_low"],
                t["variability_low"],
                t["variability_low"],
                t["variability_low"],
            ],
            "y0": [0, 0, t["confidence_high"], t["confidence_high"], t["confidence_low"]],
            "y1": [1, t["confidence_low"], 1, t["confidence_high"], t["confidence_low"]],
        }
        data_map.segment(source=ColumnDataSource(lines), line_color="#444", line_dash="dashed", line_width=1.2)
        for text, x, y in (
            ("easy", 0.005, 0.97),
            ("hard", 0.005, 0.02),
            ("ambiguous", t["variability_high"] + 0.005, 0.97),
        ):
            data_map.add_layout(Label(x=x, y=y, text=text, text_font_size="11px", text_color="#444"))
    thumb = CustomJSHover(code="return SDX.thumb(value)")
    data_map.add_tools(
        TapTool(renderers=[dots]),
        HoverTool(
            renderers=[dots],
            # one tooltip, of the point a click shows (the one drawn on top): in a dense
            # corner of a default-size map, dozens stacked over the page
            sort_by=[("$index", "descending")],
            limit=1,
            tooltips='<div><img src="@row{custom}" width="84" height="84" style="image-rendering:pixelated;'
            'border:1px solid #ccc"><div><b>@image_id</b> (@split)</div>'
            "<div>confidence @y{0.000}, variability @x{0.000}</div>"
            "<div>u_mean @u_mean{0.000} · KL @kl{0.000} · @region</div></div>",
            formatters={"@row": thumb},
        ),
    )
    points.selected.js_on_change("indices", CustomJS(code="SDX.tapped(cb_obj.indices)"))

    others = ColumnDataSource(
        {k: [] for k in ("row", "image_id", "split", "region", "hlv", "majority", "predicted", "kl")}, name="others"
    )
    table = DataTable(
        source=others,
        columns=[
            TableColumn(field="image_id", title="image id", width=140),
            TableColumn(field="split", title="split", width=45),
            TableColumn(field="region", title="region", width=70),
            TableColumn(field="hlv", title="HLV", width=55),
            TableColumn(field="majority", title="majority", width=70),
            TableColumn(field="predicted", title="argmax", width=55),
            TableColumn(field="kl", title="KL", width=60, formatter=NumberFormatter(format="0.000")),
        ],
        width=600,
        height=260,
        index_position=None,
        reorderable=False,  # column reordering needs jquery-ui, which Bokeh does not bundle
        name="others_table",
    )
    others.selected.js_on_change("indices", CustomJS(code="SDX.picked(cb_obj.indices)"))

    image_source = ColumnDataSource({"image": [np.zeros((28, 28), np.float32)]}, name="image")
    image = figure(
        frame_width=224,  # 8 screen pixels per image pixel, square
        frame_height=224,
        x_range=(0, 28),
        y_range=(0, 28),
        tools="",
        toolbar_location=None,
        name="image_figure",
        title="image (28 x 28)",
    )
    image.image("image", x=0, y=0, dw=28, dh=28, source=image_source, color_mapper=_greys(Greys256))
    image.axis.visible = False
    image.grid.visible = False

    series = list(meta["label_series"])
    bars_source = ColumnDataSource(
        {"cls": meta["class_names"], **{s: [0.0] * len(meta["class_names"]) for s in series}}, name="bars"
    )
    bars = figure(
        width=520,
        height=300,
        x_range=FactorRange(*meta["class_names"]),
        y_range=(0, 1.05),
        tools="",
        toolbar_location=None,
        title="labels: original distribution and human soft labels",
        name="bars_figure",
    )
    width = 0.8 / len(series)
    for i, s in enumerate(series):
        bars.vbar(
            x=dodge("cls", (i - (len(series) - 1) / 2) * width, range=bars.x_range),
            top=s,
            width=width * 0.95,
            source=bars_source,
            color=meta["colours"]["series"][s],
            legend_label=meta["label_series"][s],
        )
    bars.legend.label_text_font_size = "9px"
    bars.legend.ncols = 2
    bars.legend.padding = 2
    bars.legend.spacing = 0
    bars.legend.glyph_height = 10
    bars.legend.glyph_width = 10
    bars.legend.location = "left"
    bars.add_layout(bars.legend[0], "below")
    bars.xaxis.major_label_orientation = 0.6

    rows = ["human soft label"] + meta["targets"]
    heat_source = ColumnDataSource({"x": [], "y": [], "p": [], "text": []}, name="heat")
    kl_source = ColumnDataSource({"x": [], "y": [], "text": []}, name="heat_kl")
    heat = figure(
        width=620,
        height=60 + 26 * len(rows),
        x_range=FactorRange(*[str(d) for d in range(N_DIGITS)], "KL"),
        y_range=FactorRange(*reversed(rows)),
        tools="",
        toolbar_location=None,
        title="mean predicted distribution over seeds",
        name="heat_figure",
    )
    heat.title.text_font_size = "11px"
    # white (0) to a middle blue (1): the values printed on the cells stay readable
    mapper = LinearColorMapper(palette=list(reversed(Blues256))[:170], low=0, high=1)
    heat.rect("x", "y", 0.95, 0.9, source=heat_source, fill_color={"field": "p", "transform": mapper}, line_color=None)
    heat.text(
        "x",
        "y",
        "text",
        source=heat_source,
        text_align="center",
        text_baseline="middle",
        text_font_size="9px",
        text_color="#000",
    )
    heat.text("x", "y", "text", source=kl_source, text_align="center", text_baseline="middle", text_font_size="10px")
    heat.grid.visible = False

    epochs_source = ColumnDataSource({"xs": [], "ys": [], "target": [], "colour": [], "width": []}, name="epochs")
    epochs = figure(
        width=620,
        height=240,
        y_range=(0, 1),
        x_axis_label="epoch",
        y_axis_label="p(gold), mean over seeds",
        tools="",
        toolbar_location=None,
        title="confidence per epoch (training images)",
        name="epochs_figure",
    )
    epochs.title.text_font_size = "11px"
    if meta["epochs"]:
        first = meta["epochs"][max(0, len(meta["epochs"]) - meta["last_epochs"])]
        epochs.add_layout(
            BoxAnnotation(left=first - 0.5, right=meta["epochs"][-1] + 0.5, fill_alpha=0.08, fill_color="#000")
        )
        epochs.x_range.start, epochs.x_range.end = meta["epochs"][0] - 0.5, meta["epochs"][-1] + 0.5
    epochs.multi_line("xs", "ys", source=epochs_source, line_color="colour", line_width="width", legend_field="target")
    epochs.legend.label_text_font_size = "9px"
    epochs.legend[0].name = "epochs_legend"
    epochs.add_layout(epochs.legend[0], "right")

    def div(name, width, text=""):
        return Div(text=text, name=name, width=width, stylesheets=[_css()])

    controls = column(
        row(model, target, colour),
        row(show, search),
        row(Div(text="split", width=60), splits),
        row(Div(text="stratum", width=60), strata),
        row(Div(text="selection region", width=60), regions),
    )
    left = column(
        controls,
        div("legend", 600),
        data_map,
        div("counts", 600),
        div("table_title", 600),
        table,
    )
    right = column(
        div(
            "info", 640, '<div class="sdx-empty">Click a point (or a table row, or find an id) to see its image.</div>'
        ),
        row(image, bars),
        heat,
        div("heat_note", 640),
        epochs,
        div("epochs_note", 640),
        div("answers", 640),
    )
    doc = Document()
    doc.add_root(row(left, right, name="explorer"))
    doc.js_on_event("document_ready", CustomJS(code="SDX.start()"))
    doc.title = f"softdigits explorer: {meta['corpus_name']}"
    return doc


def _greys(palette):
    from bokeh.models import LinearColorMapper

    return LinearColorMapper(palette=list(reversed(palette)), low=0, high=255)  # ink (255) black, paper white


def _css() -> str:
    return (Path(__file__).parent / ASSETS["style"]).read_text()


TEMPLATE = """
{% block postamble %}
<style>{{ page_css }}</style>
<script>{{ page_js }}</script>
{% endblock %}
{% block contents %}
<header class="sdx-header">
  <h1>{{ heading | e }}</h1>
  <p class="sdx-labels-origin{{ ' sdx-simulated' if simulated }}">{{ labels_sentence | e }}</p>
  <p class="sdx-about">{{ about | e }}</p>
</header>
<script type="application/json" id="{{ meta_id }}">{{ meta_json }}</script>
<script type="application/octet-stream" id="{{ payload_id }}">{{ payload_b64 }}</script>
{{ super() }}
{% endblock %}
"""


def page_html(explorer: Explorer) -> str:
    """The whole page as one string (Bokeh's JavaScript inlined)."""
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    meta, blob = payload(explorer)
    n_train = int((explorer.table["split"] == "train").sum())
    about = (
        f"{len(explorer.table):,} study images ({n_train:,} train). Each point is a training image on the model "
        f"data map of the chosen model and target: confidence and variability of p(gold) over the last "
        f"{explorer.last_epochs} epochs of {len(explorer.seeds)} seed(s); {meta['gold_note']}. Validation and test "
        "images have no point (dynamics are recorded on training images): they are in the table under the map, "
        "with their final predictions. "
        + (
            "Dashed lines: the corpus's cartography region thresholds."
            if explorer.thresholds
            else "No cartography region thresholds were given for this corpus: no regions on the map."
        )
    )
    return file_html(
        _document(meta),
        INLINE,
        f"softdigits explorer: {meta['corpus_name']}",
        template=TEMPLATE,
        template_variables={
            "page_css": _css(),
            "page_js": (Path(__file__).parent / ASSETS["script"]).read_text(),
            "heading": f"Explorer: {meta['corpus_name']} ({explorer.corpus})",
            "labels_sentence": explorer.labels_sentence,
            "simulated": meta["simulated"],
            "about": about,
            "meta_id": META_ID,
            "meta_json": _json_for_script(meta),
            "payload_id": PAYLOAD_ID,
            "payload_b64": base64.b64encode(blob).decode("ascii"),
        },
    )


def write_page(explorer: Explorer, path: str | os.PathLike) -> int:
    """Write the page atomically; returns its size in bytes."""
    html = page_html(explorer)
    io.write_text(html, path)
    return len(html.encode())
