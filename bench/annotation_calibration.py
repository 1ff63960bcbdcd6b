"""Calibrate the SIMULATED annotator panel: its Table 1 against the paper's, per setting.

Reruns the simulated panel on a finished run's exported campaign (no Snakemake, no
files written) for each value of one `annotation.simulation` key and prints the
Table 1 statistics beside the paper's. This is how the defaults in
workflow_config.yaml were chosen; rerun it after changing the generator or the panel:

    .venv/bin/python bench/annotation_calibration.py --corpus mukhoti \
        --key record_weight --values 0.9 0.7 0.5 0.3

`--key` is a key of `annotation.simulation` or of its `panel` (e.g. `panel.sure`).
It needs `results/` of a default run up to the annotation export.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from softdigits import io  # noqa: E402
from softdigits.aggregation import aggregate  # noqa: E402
from softdigits.annotation import read_campaign  # noqa: E402
from softdigits.annotator_simulation import PanelParams, image_signal, simulate_panel  # noqa: E402
from softdigits.io import NOT_A_DIGIT  # noqa: E402

COLUMNS = ["hlv_pct", "orig_label_agreement_pct", "nan_pct", "u_mean", "u_prop"]


def table1(labels: pd.DataFrame, original: pd.Series) -> dict:
    argmax = labels["soft_label_argmax"].to_numpy()
    truth = original.loc[labels["image_id"]].to_numpy()
    return {
        "hlv_pct": 100 * labels["hlv"].mean(),
        "orig_label_agreement_pct": 100 * np.mean(argmax == truth),
        "nan_pct": 100 * np.mean(argmax == NOT_A_DIGIT),
        "u_mean": labels["human_uncert_mean"].mean(),
        "u_prop": labels["pct_ann_unsure"].mean(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", help="results folder of a default run")
    parser.add_argument("--corpus", default="mukhoti")
    parser.add_argument("--key", required=True, help="annotation.simulation key, or panel.<key>")
    parser.add_argument("--values", nargs="+", type=float, required=True)
    parser.add_argument("--config", default=str(REPO / "workflow_config.yaml"))
    args = parser.parse_args()

    config = yaml.safe_load(Path(args.config).read_text())["annotation"]
    results = Path(args.results)
    tasks, gold = read_campaign(results / f"annotation/{args.corpus}/campaign")
    images = io.read_images(results / f"dedup/{args.corpus}.parquet")
    gold_corpus = config["campaign"]["gold_corpus"]
    gold_images = images if gold_corpus == args.corpus else io.read_images(results / f"dedup/{gold_corpus}.parquet")
    records_path = results / f"generator/{args.corpus}_records.parquet"
    records = (pd.read_parquet(records_path, columns=["image_id", "parent_labels", "mix_weights"])
               if records_path.exists() else None)
    meta = images.select(["image_id", "label"]).to_pandas()
    original = meta.set_index("image_id")["label"]
    pixels = io.pixels_array(images)
    study_ids = sorted(set(tasks.loc[~tasks["is_attention_check"], "image_id"]))
    gold_meta = gold_images.select(["image_id", "label"]).to_pandas()
    gold_pixels = io.pixels_array(gold_images)

    paper = pd.read_csv(REPO / "resources/annotation/paper_table1.csv").set_index("corpus")
    rows = [{"setting": "paper Table 1 (human annotators)", **paper.loc[args.corpus, COLUMNS].to_dict()}]
    for value in args.values:
        simulation = copy.deepcopy(config["simulation"])
        section, _, key = args.key.rpartition(".")
        (simulation[section] if section else simulation)[key] = value
        signal = {}
        for meta_, pixels_, ids, recs in ((meta, pixels, study_ids, records),
                                          (gold_meta, gold_pixels, sorted(set(gold["image_id"])), None)):
            signal.update(image_signal(meta_, pixels_, ids, k=int(simulation["knn_k"]),
                                       label_weight=float(simulation["label_weight"]),
                                       record_weight=float(simulation["record_weight"]),
                                       record_sharpness=float(simulation["record_sharpness"]), records=recs))
        raw = simulate_panel(tasks, signal, PanelParams.from_config(simulation["panel"]),
                             seed=int(config["seed"]), annotator_prefix=f"sim-{args.corpus}")
        labels, _ = aggregate(raw)
        rows.append({"setting": f"SIMULATED {args.key}={value:g}", **table1(labels, original)})
    print(f"{args.corpus}: Table 1 of the simulated panel per setting (not human data)")
    print(pd.DataFrame(rows).set_index("setting").round(3).to_string())


if __name__ == "__main__":
    main()
