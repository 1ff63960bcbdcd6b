/* softdigits explorer: the page's behaviour. softdigits/explorer/page.py writes the page,
 * its Bokeh models (found here by name) and the data: a JSON header (#sdx-meta) and one
 * gzip-compressed binary payload (#sdx-payload) whose blocks the header describes.
 * Nothing here reaches the network: the payload is inflated in the browser
 * (DecompressionStream) and every image is drawn from its pixels.
 */
"use strict";
window.SDX = (() => {
  const S = { ready: false, row: null, errors: [], thumbs: new Map() };
  const TYPED = { uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int32: Int32Array, float32: Float32Array };
  const LETTERS = ["N", "U", "Y"];
  const ANSWER_CLASS = ["sdx-no", "sdx-unsure", "sdx-yes"];

  const model = (name) => S.doc.get_model_by_name(name);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const fmt = (v, d = 3) => (v === 0 ? "0" : Number.isFinite(v) ? v.toFixed(d) : "–");
  const className = (k) => (k === S.meta.not_a_digit ? "not a digit" : String(k));

  function fromBase64(b64) {
    if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(b64);
    const text = atob(b64);
    const bin = new Uint8Array(text.length);
    for (let k = 0; k < text.length; k++) bin[k] = text.charCodeAt(k);
    return bin;
  }

  async function inflate(b64) {
    const bin = fromBase64(b64.trim());
    const stream = new Blob([bin]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).arrayBuffer();
  }

  async function start() {
    try {
      S.timings = { document_ready_ms: performance.now() };
      S.doc = Bokeh.documents[Bokeh.documents.length - 1];
      model("info").text = '<div class="sdx-empty">Loading the data…</div>';
      const meta = JSON.parse(document.getElementById("sdx-meta").textContent);
      const buffer = await inflate(document.getElementById("sdx-payload").textContent);
      S.timings.inflated_ms = performance.now();
      if (buffer.byteLength !== meta.n_bytes) throw new Error(`payload holds ${buffer.byteLength} bytes, expected ${meta.n_bytes}`);
      const A = {};
      for (const [name, block] of Object.entries(meta.blocks)) {
        const count = block.shape.reduce((a, b) => a * b, 1);
        A[name] = new TYPED[block.dtype](buffer, block.offset, count);
      }
      S.meta = meta;
      S.A = A;
      S.n = meta.image_id.length;
      S.cells = new Map(meta.cells.map((c, i) => [`${c[0]}/${c[1]}`, i]));
      S.index = new Map(meta.image_id.map((id, i) => [id, i]));
      S.umax = Math.max(1e-6, ...A.u_mean);
      S.ndarray = Bokeh.require("core/util/ndarray").ndarray;
      S.ready = true;
      model("info").text = '<div class="sdx-empty">Click a point (or a table row, or find an id) to see its image.</div>';
      refresh();
      S.timings.interactive_ms = performance.now();
    } catch (err) {
      S.errors.push(String(err));
      console.error(err);
      if (S.doc) model("info").text = `<div class="sdx-error">The page could not load its data: ${esc(err)}</div>`;
    }
  }

  // ------------------------------------------------------------ the chosen cell and filters

  function cell() {
    return S.cells.get(`${model("model").value}/${model("target").value}`);
  }

  function active(name) {
    const w = model(name);
    return new Set(w.active.map((i) => w.labels[i]));
  }

  const at = (block, c, i) => S.A[block][c * S.n + i];

  function filtered(c) {
    const M = S.meta;
    const splits = active("splits");
    const strata = active("strata");
    const regions = active("regions");
    let rows = [];
    for (let i = 0; i < S.n; i++) {
      if (splits.has(M.split[i]) && strata.has(M.hlv[i] ? "HLV" : "NoHLV") && regions.has(M.region[i])) rows.push(i);
    }
    const k = model("top_k").value;
    if (k !== "all") {
      rows = rows.filter((i) => Number.isFinite(at("kl", c, i)));
      rows.sort((a, b) => at("kl", c, b) - at("kl", c, a));
      rows = rows.slice(0, Number(k));
    }
    return rows;
  }

  function mapRegion(c, i) {
    const code = at("map_region", c, i);
    return code === S.meta.region_none ? "" : S.meta.regions[code];
  }

  function colourOf(view, c, i) {
    const M = S.meta;
    if (view === "u_mean") {
      const t = Math.min(1, S.A.u_mean[i] / S.umax);
      return M.viridis[Math.round((1 - t) * (M.viridis.length - 1))]; // yellow: certain, purple: uncertain
    }
    if (view === "hlv") return M.colours.hlv[M.hlv[i] ? "HLV" : "NoHLV"];
    if (view === "map_region") return M.colours.region[mapRegion(c, i)] || "#000";
    return M.colours.region[M.region[i]] || "#000";
  }

  function legend(view) {
    const M = S.meta;
    if (view === "u_mean") {
      const stops = [0, 0.25, 0.5, 0.75, 1].map((t) => M.viridis[Math.round((1 - t) * (M.viridis.length - 1))]);
      return `<div class="sdx-legend">human uncertainty u_mean: 0 <span class="sdx-gradient" style="background:linear-gradient(to right,${stops.join(",")})"></span> ${fmt(S.umax)} (points drawn in order of u_mean, the most uncertain on top)</div>`;
    }
    const entries = view === "hlv" ? M.colours.hlv : M.colours.region;
    const what = { hlv: "human label variation", map_region: "region of the point on this map (the dashed thresholds)", region: "selection region (the corpus's own data map, the selection stratum)" }[view];
    const swatches = Object.entries(entries)
      .map(([k, col]) => `<span class="sdx-swatch" style="background:${col}"></span>${esc(k)}`)
      .join(" ");
    return `<div class="sdx-legend">${esc(what)}: ${swatches}</div>`;
  }

  function refresh() {
    if (!S.ready) return;
    const M = S.meta;
    const c = cell();
    const view = model("colour").value;
    const rows = filtered(c);
    let onMap = rows.filter((i) => Number.isFinite(at("confidence", c, i)));
    const offMap = rows.filter((i) => !Number.isFinite(at("confidence", c, i)));
    if (view === "u_mean") onMap = onMap.slice().sort((a, b) => S.A.u_mean[a] - S.A.u_mean[b]);
    const points = model("points");
    points.data = {
      x: onMap.map((i) => at("variability", c, i)),
      y: onMap.map((i) => at("confidence", c, i)),
      row: onMap,
      colour: onMap.map((i) => colourOf(view, c, i)),
      image_id: onMap.map((i) => M.image_id[i]),
      split: onMap.map((i) => M.split[i]),
      u_mean: onMap.map((i) => S.A.u_mean[i]),
      kl: onMap.map((i) => at("kl", c, i)),
      region: onMap.map((i) => mapRegion(c, i)),
    };
    S.ignoreSelection = true;
    points.selected.indices = [];
    const others = model("others");
    others.data = {
      row: offMap,
      image_id: offMap.map((i) => M.image_id[i]),
      split: offMap.map((i) => M.split[i]),
      region: offMap.map((i) => M.region[i]),
      hlv: offMap.map((i) => (M.hlv[i] ? "HLV" : "NoHLV")),
      majority: offMap.map((i) => className(M.majority[i])),
      predicted: offMap.map((i) => predictedClass(c, i)),
      kl: offMap.map((i) => (Number.isFinite(at("kl", c, i)) ? at("kl", c, i) : null)),
    };
    others.selected.indices = [];
    // Bokeh's DataTable redraws when its view's row set changes: new values in as many rows
    // (another model or target) would stay unseen without this
    model("others_table").change.emit();
    S.ignoreSelection = false;
    const name = M.models.find((m) => m.id === model("model").value)?.name ?? model("model").value;
    model("data_map").title.text = `Model data map: ${M.corpus_name}, ${name}, target ${model("target").value}`;
    model("legend").text = legend(view);
    const train = rows.filter((i) => M.split[i] === "train").length;
    const k = model("top_k").value;
    model("counts").text =
      `<div class="sdx-counts"><span class="sdx-n-points">${onMap.length}</span> point(s) on the map, ` +
      `<span class="sdx-n-others">${offMap.length}</span> image(s) in the table` +
      (k === "all" ? "" : `: the ${rows.length} with the largest KL(human ‖ model) among those that pass the filters`) +
      `; ${train - onMap.length} of the ${train} training image(s) shown have no gold digit for this target (no point).` +
      (S.searchNote ? ` <span class="sdx-error">${esc(S.searchNote)}</span>` : "") +
      "</div>";
    model("table_title").text =
      '<div class="sdx-table-title">Images without a point on this map: validation and test images (with their final ' +
      "predictions) and training images without a gold digit. Click a row to see the image. Region: the selection " +
      "region; majority: the human majority class; argmax: the model's; KL: KL(human ‖ model) in nats." +
      (k === "all" ? "" : " Sorted by KL(human ‖ model), largest first.") + "</div>";
    if (S.row !== null) show(S.row);
  }

  function predictedClass(c, i) {
    const base = (c * S.n + i) * 10;
    if (S.A.probs[base] === S.meta.probs_none) return "–";
    let best = 0;
    for (let k = 1; k < 10; k++) if (S.A.probs[base + k] > S.A.probs[base + best]) best = k;
    return String(best);
  }

  // ------------------------------------------------------------ the chosen image

  function pixelsOf(i) {
    return S.A.pixels.subarray(i * 784, (i + 1) * 784);
  }

  /** A data URL of the image (ink dark on white, as the image panel), for the hover tooltip. */
  function thumb(row) {
    if (!S.ready) return "";
    if (!S.thumbs.has(row)) {
      const canvas = document.createElement("canvas");
      canvas.width = 28;
      canvas.height = 28;
      const g = canvas.getContext("2d");
      const img = g.createImageData(28, 28);
      const px = pixelsOf(row);
      for (let p = 0; p < 784; p++) img.data.set([255 - px[p], 255 - px[p], 255 - px[p], 255], p * 4);
      g.putImageData(img, 0, 0);
      S.thumbs.set(row, canvas.toDataURL());
    }
    return S.thumbs.get(row);
  }

  function show(i) {
    if (!S.ready || i === null || i === undefined) return;
    S.row = i;
    const M = S.meta;
    const c = cell();
    const conf = at("confidence", c, i);
    const vari = at("variability", c, i);
    model("chosen").data = Number.isFinite(conf) ? { x: [vari], y: [conf] } : { x: [], y: [] };
    const px = pixelsOf(i);
    const flipped = new Float32Array(784); // the image glyph draws row 0 at the bottom
    for (let r = 0; r < 28; r++) for (let k = 0; k < 28; k++) flipped[(27 - r) * 28 + k] = px[r * 28 + k];
    model("image").data = { image: [S.ndarray(flipped, { dtype: "float32", shape: [28, 28] })] };
    model("image_figure").title.text = `${M.image_id[i]} (${M.split[i]})`;
    const series = Object.keys(M.label_series);
    const bars = { cls: M.class_names };
    for (const s of series) bars[s] = labelValues(s, i);
    model("bars").data = bars;
    model("info").text = infoHtml(i, c, conf, vari);
    heat(i);
    epochs(i);
    model("answers").text = answersHtml(i);
  }

  function labelValues(series, i) {
    const width = S.meta.blocks[series].shape[1];
    const values = Array.from(S.A[series].subarray(i * width, (i + 1) * width));
    while (values.length < S.meta.class_names.length) values.push(0); // the original has no not-a-digit class
    return values;
  }

  function infoHtml(i, c, conf, vari) {
    const M = S.meta;
    const modelName = M.models.find((m) => m.id === model("model").value)?.name ?? model("model").value;
    const target = model("target").value;
    const answers = M.has_answers ? annotatorCounts(i) : "released aggregates (no per-annotator answers)";
    let onMap;
    if (Number.isFinite(conf)) {
      onMap =
        `On this map (${esc(modelName)}, ${esc(target)}): confidence <b class="sdx-confidence">${fmt(conf)}</b>, ` +
        `variability <b class="sdx-variability">${fmt(vari)}</b>, region ${esc(mapRegion(c, i))}, gold ${at("gold", c, i)}.`;
    } else if (M.split[i] === "train") {
      onMap = `No point on this map: no gold digit for target ${esc(target)} (e.g. a not-a-digit majority).`;
    } else {
      onMap = `No point on the data map: a ${esc(M.split[i])} image (dynamics are recorded on training images).`;
    }
    const kl = at("kl", c, i);
    const header = M.class_names.map((k, n) => `<th>${n === M.not_a_digit ? "∅" : esc(k)}</th>`).join("");
    const body = Object.entries(M.label_series)
      .map(([s, title]) => {
        const width = M.blocks[s].shape[1];
        const values = Array.from(S.A[s].subarray(i * width, (i + 1) * width));
        const cells = M.class_names.map((_, k) => (k < width ? `<td>${fmt(values[k])}</td>` : "<td>–</td>")).join("");
        return `<tr data-series="${s}"><th title="${esc(title)}">${esc(shortName(s))}</th>${cells}</tr>`;
      })
      .join("");
    return (
      `<div class="sdx-info" data-row="${i}">` +
      `<div class="sdx-title"><span class="sdx-image-id">${esc(M.image_id[i])}</span> ` +
      `<span class="sdx-split">${esc(M.split[i])}</span></div>` +
      `<div class="sdx-facts">${esc(M.source[i])} · selection region ${esc(M.region[i])} · original label ${M.label[i]} · ` +
      `human majority <b>${esc(className(M.majority[i]))}</b> · ${M.hlv[i] ? "HLV" : "NoHLV"} · u_mean ${fmt(S.A.u_mean[i])} · ` +
      `u_prop ${fmt(S.A.u_prop[i], 2)} · ${answers}</div>` +
      `<div class="sdx-facts">${onMap} KL(human ‖ model) ${fmt(kl)} nats.</div>` +
      `<table class="sdx-label-table"><tr><th></th>${header}</tr>${body}</table></div>`
    );
  }

  function shortName(series) {
    return { label_dist: "original", soft_label: "s_u", soft_label_yes_unc_equal: "s_equal", soft_label_yes_only: "s_yes" }[series] ?? series;
  }

  function annotatorCounts(i) {
    const A = S.A;
    const first = A.answer_start[i];
    const last = A.answer_start[i + 1];
    const excluded = new Set(S.meta.excluded_annotators);
    let out = 0;
    for (let r = first; r < last; r++) if (excluded.has(S.meta.annotators[A.answer_annotator[r]])) out++;
    return `${last - first - out} annotator(s) kept` + (out ? `, ${out} excluded` : "");
  }

  function heat(i) {
    const M = S.meta;
    const modelId = model("model").value;
    const x = [];
    const y = [];
    const p = [];
    const text = [];
    const kx = [];
    const ky = [];
    const kt = [];
    const human = labelValues(M.human_soft_label, i).slice(0, 10);
    const mass = human.reduce((a, b) => a + b, 0);
    for (let k = 0; k < 10; k++) {
      const v = mass > 0 ? human[k] / mass : NaN;
      x.push(String(k));
      y.push("human soft label");
      p.push(Number.isFinite(v) ? v : 0);
      text.push(Number.isFinite(v) ? v.toFixed(2) : "–");
    }
    for (const target of M.targets) {
      const c = S.cells.get(`${modelId}/${target}`);
      const base = (c * S.n + i) * 10;
      const none = S.A.probs[base] === M.probs_none;
      for (let k = 0; k < 10; k++) {
        const v = none ? NaN : S.A.probs[base + k] / M.probs_scale;
        x.push(String(k));
        y.push(target);
        p.push(Number.isFinite(v) ? v : 0);
        text.push(Number.isFinite(v) ? v.toFixed(2) : "–");
      }
      kx.push("KL");
      ky.push(target);
      kt.push(fmt(at("kl", c, i)));
    }
    model("heat").data = { x, y, p, text };
    model("heat_kl").data = { x: kx, y: ky, text: kt };
    const name = M.models.find((m) => m.id === modelId)?.name ?? modelId;
    const what = M.split[i] === "train" ? "last epoch of the dynamics runs" : "best validation-loss checkpoint";
    model("heat_figure").title.text = `${name}: mean predicted distribution over ${M.seeds.length} seed(s), ${what}`;
    model("heat_note").text =
      `<div class="sdx-legend">One row per training target of ${esc(name)}; the top row is the human soft label ` +
      `(${esc(M.human_soft_label)}) with its ten digits renormalised, the reference of KL(human ‖ model) (nats, right).</div>`;
  }

  function epochs(i) {
    const M = S.meta;
    const modelId = model("model").value;
    const chosen = model("target").value;
    const data = { xs: [], ys: [], target: [], colour: [], width: [] };
    const E = M.epochs.length;
    M.targets.forEach((target, t) => {
      const c = S.cells.get(`${modelId}/${target}`);
      const base = (c * S.n + i) * E;
      if (E === 0 || !Number.isFinite(at("confidence", c, i))) return; // p(gold) exists for map points only
      let code = 0; // stored as differences modulo 256 from epoch to epoch
      data.xs.push(M.epochs);
      data.ys.push(Array.from(S.A.p_gold.subarray(base, base + E), (d) => ((code = (code + d) & 255), code / M.p_gold_scale)));
      data.target.push(target);
      data.colour.push(M.target_colours[t % M.target_colours.length]);
      data.width.push(target === chosen ? 3.5 : 1.5);
    });
    model("epochs").data = data;
    const fig = model("epochs_figure");
    model("epochs_legend").visible = data.xs.length > 0;
    if (M.split[i] !== "train") fig.title.text = `no per-epoch record for a ${M.split[i]} image (dynamics are recorded on training images)`;
    else if (!data.xs.length) fig.title.text = "no per-epoch p(gold): no gold digit for any target of this model";
    else fig.title.text = `p(gold) per epoch, mean over ${M.seeds.length} seed(s)`;
    model("epochs_note").text =
      `<div class="sdx-legend">Gold: the data map's, per target. Shaded: the last ${M.last_epochs} epochs, which the data ` +
      "map pools (their mean is the point's confidence). Thick line: the chosen target.</div>";
  }

  function answersHtml(i) {
    const M = S.meta;
    if (!M.has_answers) return '<div class="sdx-answers-title">No per-annotator answers: the labels are the released aggregates.</div>';
    const A = S.A;
    const excluded = new Set(M.excluded_annotators);
    const who = M.simulated ? "SIMULATED annotators (not human data)" : "annotators";
    const head = Array.from({ length: 10 }, (_, k) => `<th>${k}</th>`).join("");
    let rows = "";
    for (let r = A.answer_start[i]; r < A.answer_start[i + 1]; r++) {
      const id = M.annotators[A.answer_annotator[r]];
      const out = excluded.has(id);
      const cells = Array.from(A.answer_codes.subarray(r * 10, r * 10 + 10), (code) => `<td class="${ANSWER_CLASS[code]}">${LETTERS[code]}</td>`).join("");
      rows +=
        `<tr data-annotator="${esc(id)}"${out ? ' class="sdx-excluded"' : ""}><td class="sdx-annotator">${esc(id)}</td>${cells}` +
        `<td class="sdx-note">${out ? "excluded: failed an attention check (not in the soft labels)" : ""}</td></tr>`;
    }
    return (
      `<div class="sdx-answers-title">Answers of the ${who} to "is this a …?" for each digit: Y yes, U unsure, N no.</div>` +
      `<table class="sdx-answers"><tr><th>annotator</th>${head}<th></th></tr>${rows}</table>`
    );
  }

  // ------------------------------------------------------------ events

  function tapped(indices) {
    if (S.ignoreSelection || !indices.length) return;
    const points = model("points");
    show(points.data.row[Math.max(...indices)]); // several under the cursor: the one drawn on top
  }

  function picked(indices) {
    if (S.ignoreSelection || !indices.length) return;
    show(model("others").data.row[indices[0]]);
  }

  function search(value) {
    const needle = (value || "").trim();
    if (!S.ready || needle.length < 2) return;
    let i = S.index.get(needle);
    if (i === undefined) {
      const hits = S.meta.image_id.filter((id) => id.toLowerCase().includes(needle.toLowerCase()));
      if (hits.length === 1) i = S.index.get(hits[0]);
    }
    if (i === undefined) {
      S.searchNote = `No single image id matches "${needle}".`;
      refresh();
      return;
    }
    S.searchNote = null;
    S.row = i;
    refresh(); // redraws the counts (a note of an earlier search goes) and shows row i
  }

  /** Page coordinates of an image's point on the map (null when it has none): for tests and links. */
  function pointXY(imageId) {
    const points = model("points");
    const k = points.data.image_id.indexOf(imageId);
    if (k < 0) return null;
    const view = Bokeh.index.get_one(model("data_map"));
    const rect = view.canvas_view.el.getBoundingClientRect();
    return [rect.left + view.frame.x_scale.compute(points.data.x[k]), rect.top + view.frame.y_scale.compute(points.data.y[k])];
  }

  const state = () => ({ ready: S.ready, row: S.row, image_id: S.row === null ? null : S.meta.image_id[S.row], errors: S.errors.slice(), timings: S.timings });

  return { start, refresh, show, thumb, tapped, picked, search, pointXY, state };
})();
