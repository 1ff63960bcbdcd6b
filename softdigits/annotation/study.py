"""The study table of one corpus: selection + images + labels, the one table training reads.

Its contract (schema, writer, readers) is `softdigits.study_table`; this module builds
the rows, from aggregated labels (`build_study`) or the released table (`run_study`).
"""

from __future__ import annotations

import logging

import pandas as pd
import pyarrow as pa

from softdigits import io, study_table
from softdigits.annotation.aggregation import LABEL_COLUMNS, read_labels
from softdigits.annotation.released import match_released_ids, read_released

log = logging.getLogger(__name__)


def build_study(selection: pd.DataFrame, images: pa.Table, labels: pd.DataFrame) -> tuple[pa.Table, dict]:
    """Join selection (image_id, region, split), images and aggregated labels.

    Selected images that no kept annotator labelled (all excluded) are dropped and
    counted in the returned info.
    """
    ids = set(selection["image_id"])
    meta = images.select(["image_id", "source", "label", "label_dist"]).to_pandas()
    pix = io.pixels_array(images)
    row_of = {image_id: k for k, image_id in enumerate(images.column("image_id").to_pylist())}
    unknown = sorted(ids - set(row_of))
    if unknown:
        raise ValueError(f"selected images missing from the images table: {unknown[:5]}")
    joined = selection[["image_id", "split", "region"]].merge(meta, on="image_id")
    joined = joined.merge(labels[LABEL_COLUMNS], on="image_id", how="left")
    unlabelled = joined["soft_label"].isna()
    dropped = joined.loc[unlabelled, "image_id"].tolist()
    joined = joined[~unlabelled].reset_index(drop=True)
    joined["pixels"] = list(pix[[row_of[i] for i in joined["image_id"]]])
    return study_table.to_arrow(joined), {
        "n_images": len(joined),
        "n_unlabelled_dropped": len(dropped),
        "unlabelled_dropped": dropped[:50],
    }


def run_study(
    *,
    origin: str,
    images_path,
    data_map_path,
    out_path,
    selection_path=None,
    labels_path=None,
    released_path=None,
    corpus: str = "",
) -> None:
    """Rule study_table: the study table of one corpus, with `labels_origin` metadata."""
    images = io.read_images(images_path)
    data_map = pd.read_parquet(data_map_path, columns=["image_id", "region"])
    if origin == "released":
        released = match_released_ids(read_released(released_path, corpus), images)
        region = data_map.set_index("image_id")["region"]
        released["region"] = region.reindex(released["image_id"]).fillna("unknown").to_numpy()
        n_matched = int((released["region"] != "unknown").sum())
        log.warning(
            "%s: released labels carry image-level aggregates only: per-annotator "
            "statistics (annotators per image, reaction times, QC) are not available",
            corpus,
        )
        log.info("%s: %d of %d released images matched a corpus image by pixels", corpus, n_matched, len(released))
        table = study_table.to_arrow(released)
        info = {"n_images": len(released), "n_matched_to_corpus": n_matched}
    else:
        made_by = io.read_metadata(labels_path).get("origin")
        if made_by is not None and made_by != origin:
            raise io.DataContractError(
                f"{labels_path}: these labels come from origin {made_by!r}, but the study table is for "
                f"{origin!r}; rebuild them: snakemake --forcerun aggregate_labels"
            )
        selection = pd.read_parquet(selection_path)
        table, info = build_study(selection, images, read_labels(labels_path))
        if info["n_unlabelled_dropped"]:
            log.warning(
                "%s: %d selected image(s) had no annotator left after QC and are " "dropped: %s",
                corpus,
                info["n_unlabelled_dropped"],
                info["unlabelled_dropped"],
            )
    study_table.write_study(table, out_path, origin=origin, info=info)
