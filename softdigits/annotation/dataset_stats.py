"""Dataset statistics of the annotated corpora: Table 1, annotations per image, Appendix B.

All statistics are computed from the study tables (and the raw answers where they
exist), so they are the same for simulated, campaign and released labels; each
table says which origin its labels came from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from softdigits.constants import NOT_A_DIGIT
from softdigits.evaluation.metrics import entropy
from softdigits.io import vectors_array

TABLE1_COLUMNS = [
    "corpus",
    "labels",
    "n_images",
    "nohlv_pct",
    "hlv_pct",
    "orig_label_agreement_pct",
    "nan_pct",
    "u_mean",
    "u_prop",
]
PROXIES = {
    "rt_norm": "(1) normalised mean reaction time",
    "u_mean": "(2) u_mean (human_uncert_mean)",
    "u_prop": "(3) u_prop (pct_ann_unsure)",
    "entropy_uncertainty_weighted": "(4) entropy of soft_label (uncertainty weighted)",
    "entropy_equal": "(5) entropy of soft_label_yes_unc_equal (equally weighted)",
}


def table1_row(corpus: str, study, origin: str) -> dict:
    """One corpus's Table 1 row from its study table (a pyarrow Table)."""
    argmax = study.column("soft_label_argmax").to_numpy()
    label = study.column("label").to_numpy()
    hlv = study.column("hlv").to_numpy(zero_copy_only=False)
    return {
        "corpus": corpus,
        "labels": origin,
        "n_images": len(argmax),
        "nohlv_pct": 100.0 * float(np.mean(~hlv)),
        "hlv_pct": 100.0 * float(np.mean(hlv)),
        "orig_label_agreement_pct": 100.0 * float(np.mean(argmax == label)),
        "nan_pct": 100.0 * float(np.mean(argmax == NOT_A_DIGIT)),
        "u_mean": float(np.nanmean(study.column("human_uncert_mean").to_numpy())),
        "u_prop": float(np.nanmean(study.column("pct_ann_unsure").to_numpy())),
    }


def compare_with_paper(table1: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Side by side: each corpus's row of ours and the paper's published row."""
    ours = table1.assign(source=lambda d: "this run (" + d["labels"] + " labels)")
    theirs = paper.assign(source="paper Table 1 (human annotators)", labels="human")
    theirs = theirs[theirs["corpus"].isin(table1["corpus"])]
    both = pd.concat([ours, theirs], ignore_index=True)
    cols = ["corpus", "source"] + [c for c in TABLE1_COLUMNS if c not in ("corpus", "labels")]
    both = both[cols].sort_values(["corpus", "source"], kind="stable").reset_index(drop=True)
    return both


def annotations_per_image(corpus: str, study) -> pd.DataFrame:
    """corpus, n_annotators, n_images (empty when the count is unknown, e.g. released)."""
    counts = pd.Series(study.column("n_annotators").to_pandas()).dropna().astype(int)
    hist = counts.value_counts().sort_index()
    return pd.DataFrame(
        {"corpus": corpus, "n_annotators": hist.index.astype(int), "n_images": hist.to_numpy(dtype=int)}
    )


def normalised_reaction_time(raw: pd.DataFrame, image_ids: pd.Index) -> pd.Series:
    """Per image: the mean over annotators of their reaction time on it, each divided
    by that annotator's median over their images (removes fast and slow people).

    Uses the study images' rows only (attention checks and excluded annotators are
    already absent there); NaN when an image has no reaction times.
    """
    rows = raw[raw["image_id"].isin(image_ids)]
    per_pair = rows.groupby(["annotator_id", "image_id"])["reaction_time_ms"].mean().dropna()
    if per_pair.empty:
        return pd.Series(np.nan, index=image_ids)
    median = per_pair.groupby(level="annotator_id").transform("median")
    ratio = (per_pair / median).groupby(level="image_id").mean()
    return ratio.reindex(image_ids)


def uncertainty_proxies(study, raw: pd.DataFrame | None) -> pd.DataFrame:
    """Per image, the five Appendix B proxies (reaction time NaN without raw answers)."""
    ids = pd.Index(study.column("image_id").to_pylist())
    proxies = pd.DataFrame(index=ids)
    proxies["rt_norm"] = normalised_reaction_time(raw, ids) if raw is not None else np.nan
    proxies["u_mean"] = study.column("human_uncert_mean").to_numpy()
    proxies["u_prop"] = study.column("pct_ann_unsure").to_numpy()
    proxies["entropy_uncertainty_weighted"] = entropy(vectors_array(study, "soft_label"))
    proxies["entropy_equal"] = entropy(vectors_array(study, "soft_label_yes_unc_equal"))
    return proxies


def correlation_table(corpus: str, proxies: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlations of every pair of proxies (long format, lower triangle)."""
    rows = []
    names = list(PROXIES)
    for i, a in enumerate(names):
        for b in names[: i + 1]:
            x, y = proxies[a], proxies[b]
            both = x.notna() & y.notna()
            x, y = x[both], y[both]
            if len(x) < 3 or x.nunique() < 2 or y.nunique() < 2:
                rho = np.nan  # undefined: too few images or a constant proxy
            else:
                rho = float(spearmanr(x, y).statistic)
            rows.append(
                {
                    "corpus": corpus,
                    "proxy_row": PROXIES[a],
                    "proxy_col": PROXIES[b],
                    "spearman_rho": rho,
                    "n_images": int(both.sum()),
                }
            )
    return pd.DataFrame(rows)


def correlation_matrix_markdown(corr: pd.DataFrame) -> str:
    """One lower-triangular matrix per corpus, as in the paper's Appendix B."""
    from softdigits.io import markdown_table

    parts = []
    labels = list(PROXIES.values())
    short = [label.split(" ")[0] for label in labels]
    for corpus, block in corr.groupby("corpus", sort=False):
        lookup = {(r.proxy_row, r.proxy_col): r.spearman_rho for r in block.itertuples()}
        grid = pd.DataFrame(
            [
                [short[i]]
                + [lookup.get((labels[i], labels[j]), np.nan) if j <= i else np.nan for j in range(len(labels))]
                for i in range(len(labels))
            ],
            columns=[corpus] + short,
        )
        parts.append(markdown_table(grid))
    notes = "\n".join(f"- {label}" for label in labels)
    return "\n".join(parts) + "\nSpearman rank correlations over images. Proxies:\n" + notes + "\n"


def qc_passed_answers(raw_path) -> pd.DataFrame:
    """The raw answers of study images by annotators who passed every attention check."""
    from softdigits.annotation.aggregation import attention_failures

    raw = pd.read_parquet(raw_path)
    qc = attention_failures(raw)
    return raw[~raw["is_attention_check"] & ~raw["annotator_id"].isin(qc.failed_annotators)]


def histogram_png(per_image: pd.DataFrame, labels_note: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softdigits.io import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.5))
    corpora = list(dict.fromkeys(per_image["corpus"]))
    width = 0.8 / max(1, len(corpora))
    for k, corpus in enumerate(corpora):
        block = per_image[per_image["corpus"] == corpus]
        ax.bar(
            block["n_annotators"] + (k - (len(corpora) - 1) / 2) * width, block["n_images"], width=width, label=corpus
        )
    ax.set_xlabel("annotations per image (after attention-check exclusion)")
    ax.set_ylabel("images")
    ax.set_title(f"Labels from {labels_note}" if len(labels_note) < 60 else labels_note, fontsize=8)
    if corpora:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "not available: no per-annotator data", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    save_figure(fig, path)


def run(
    *,
    corpora: list[str],
    study_paths: list[str],
    raw_paths: list[str],
    paper_table1,
    origin: str,
    labels_note: str,
    outputs: dict,
) -> None:
    """Rule dataset_stats: every table in Markdown, CSV and Parquet (+ the histogram PNG)."""
    import logging

    import pyarrow.parquet as pq

    from softdigits.io import markdown_table, write_csv, write_table, write_text

    log = logging.getLogger(__name__)
    header = f"Labels: {labels_note}.\n\n"
    raws = dict(zip(corpora, raw_paths)) if raw_paths else {}
    rows, hists, corrs = [], [], []
    for corpus, path in zip(corpora, study_paths):
        study = pq.read_table(path)
        rows.append(table1_row(corpus, study, origin))
        hists.append(annotations_per_image(corpus, study))
        raw = qc_passed_answers(raws[corpus]) if corpus in raws else None
        corrs.append(correlation_table(corpus, uncertainty_proxies(study, raw)))
    if not raws:
        log.warning(
            "per-annotator statistics (annotations per image, reaction times) are not " "available for %s labels",
            origin,
        )
    meta = {"labels_origin": origin, "simulated": origin == "simulated"}
    table1 = pd.DataFrame(rows, columns=TABLE1_COLUMNS)
    compare = compare_with_paper(table1, pd.read_csv(paper_table1))
    per_image = pd.concat(hists, ignore_index=True)
    corr = pd.concat(corrs, ignore_index=True)
    na_note = (
        ""
        if raws
        else "Not available: the released labels carry no per-annotator "
        "data (no annotator counts, reaction times or attention checks).\n\n"
    )
    for name, df, md in (
        ("table1", table1, header + markdown_table(table1, "{:.3f}")),
        (
            "compare",
            compare,
            header + "Paper rows are the published numbers (human annotators); "
            "rows of this run are computed.\n\n" + markdown_table(compare, "{:.3f}"),
        ),
        ("per_image", per_image, header + na_note + markdown_table(per_image)),
        ("corr", corr, header + na_note + correlation_matrix_markdown(corr)),
    ):
        write_text(md, outputs[f"{name}_md"])
        write_csv(df, outputs[f"{name}_csv"])
        write_table(df, outputs[f"{name}_parquet"], metadata=meta)
    histogram_png(per_image, labels_note, outputs["per_image_png"])
    log.info("Table 1 (%s labels):\n%s", origin, markdown_table(table1))
