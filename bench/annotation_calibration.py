"""Calibrate the SIMULATED annotator panel: its Table 1 against the paper's, per setting.

Reruns the simulated panel on a finished run's exported campaigns (no Snakemake, no
files written) and prints, per corpus and setting, the Table 1 statistics beside the
paper's with their relative deviation (the target: HLV %, agreement %, u_mean and
u_prop each within 10%), and, for a generated corpus, how well the panel's majority
labels are learnt from the pixels and from the generation records
(`pixel_vs_record_predictability`). This is how the defaults in workflow_config.yaml
were chosen; rerun it after changing the generator, the selection or the panel:

    .venv/bin/python bench/annotation_calibration.py                      # the config as is
    .venv/bin/python bench/annotation_calibration.py --set panel.sure=0.5 \
        --key record_weight --values 0 0.1 0.2
    .venv/bin/python bench/annotation_calibration.py --set knn_pool=1 --key knn_k --values 10 400
    .venv/bin/python bench/annotation_calibration.py --search 300     # seeded local search

`--set` and `--key` name a key of `annotation.simulation`, or of its `panel` as
`panel.<key>`. It needs `results/` (`--results`) of a default run up to the annotation
export. The neighbours are found once per (knn_k, knn_pool); other keys are cheap.
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
import pyarrow as pa  # noqa: E402
import yaml  # noqa: E402

from softdigits import io  # noqa: E402
from softdigits.annotation.aggregation import aggregate  # noqa: E402
from softdigits.annotation.campaign import read_campaign  # noqa: E402
from softdigits.annotation.dataset_stats import table1_row  # noqa: E402
from softdigits.annotation.panel_check import pixel_vs_record_predictability  # noqa: E402
from softdigits.annotation.simulation import (  # noqa: E402
    PanelParams,
    reference_digits,
    signal_parts,
    simulate_panel,
)
from softdigits.constants import NOT_A_DIGIT

# noqa: E402

TARGETS = ["hlv_pct", "orig_label_agreement_pct", "u_mean", "u_prop"]  # within 10% of the paper
SHOWN = ["hlv_pct", "orig_label_agreement_pct", "nan_pct", "u_mean", "u_prop"]
TOLERANCE = 0.10
# --search also keeps the not-a-digit share near the paper's (one unit of deviation per
# NAN_SCALE points): else it can lower agreement by calling images not a digit.
NAN_SCALE = 5.0


def set_key(simulation: dict, dotted: str, value: float) -> None:
    section, _, key = dotted.rpartition(".")
    target = simulation[section] if section else simulation
    if key not in target:
        raise KeyError(f"annotation.simulation has no key {dotted!r}")
    target[key] = int(value) if key in ("knn_k", "knn_pool") else value


class Corpus:
    """One corpus's campaign, images, records and original labels, loaded once."""

    def __init__(self, results: Path, corpus: str, gold_corpus: str, reference):
        self.name = corpus
        self.tasks, self.gold = read_campaign(results / f"annotation/{corpus}/campaign")
        images = io.read_images(results / f"dedup/{corpus}.parquet")
        gold_images = io.read_images(results / f"dedup/{gold_corpus}.parquet")
        records_path = results / f"generator/{corpus}_records.parquet"
        self.records = (
            pd.read_parquet(records_path, columns=["image_id", "parent_labels", "mix_weights"])
            if records_path.exists()
            else None
        )
        self.meta = images.select(["image_id", "label"]).to_pandas()
        self.pixels = io.pixels_array(images)
        self.gold_meta = gold_images.select(["image_id", "label"]).to_pandas()
        self.gold_pixels = io.pixels_array(gold_images)
        self.study_ids = sorted(set(self.tasks.loc[~self.tasks["is_attention_check"], "image_id"]))
        self.reference = reference
        self._parts = {}

    def labels(self, simulation: dict, seed: int) -> pd.DataFrame:
        """The aggregated labels of the simulated panel under `simulation`."""
        raw = simulate_panel(
            self.tasks,
            self.signal(simulation),
            PanelParams.from_config(simulation["panel"]),
            seed=seed,
            annotator_prefix=f"sim-{self.name}",
        )
        labels, _ = aggregate(raw)
        return labels

    def signal(self, simulation: dict) -> dict:
        """The perceptual signal; its neighbours are found once per (knn_k, knn_pool)."""
        k = (int(simulation["knn_k"]), int(simulation["knn_pool"]))
        if k not in self._parts:
            self._parts[k] = [
                signal_parts(meta, pixels, ids, *self.reference, k=k[0], pool=k[1], records=recs)
                for meta, pixels, ids, recs in (
                    (self.meta, self.pixels, self.study_ids, self.records),
                    (self.gold_meta, self.gold_pixels, sorted(set(self.gold["image_id"])), None),
                )
            ]
        signal = {}
        for parts in self._parts[k]:
            signal.update(
                parts.blend(
                    label_weight=float(simulation["label_weight"]),
                    record_weight=float(simulation["record_weight"]),
                    knn_tau=float(simulation["knn_tau"]),
                )
            )
        return signal

    def study(self, labels: pd.DataFrame) -> pa.Table:
        """The labels with the original label beside them, as `table1_row` reads them."""
        original = self.meta.set_index("image_id")["label"]
        return pa.Table.from_pandas(
            labels.assign(label=original.loc[labels["image_id"]].to_numpy()), preserve_index=False
        )

    def row(self, labels: pd.DataFrame) -> dict:
        out = {k: table1_row(self.name, self.study(labels), "simulated")[k] for k in SHOWN}
        if self.records is not None:
            out.update(self.predictability(labels))
        return out

    def predictability(self, labels: pd.DataFrame) -> dict:
        """Pixels vs record: held-out accuracy of predicting the panel's majority label."""
        digits = labels[labels["soft_label_argmax"] != NOT_A_DIGIT]
        rows = self.meta.reset_index().set_index("image_id").loc[digits["image_id"], "index"].to_numpy()
        records = self.records.set_index("image_id").loc[digits["image_id"]].reset_index()
        scores = pixel_vs_record_predictability(self.pixels[rows], records, digits["soft_label_argmax"].to_numpy())
        return {
            "pixels_acc": scores["pixels_acc"],
            "record_acc": scores["record_acc"],
            "record_argmax_acc": scores["record_argmax_acc"],
        }


def report(corpus: Corpus, rows: list[dict], paper: pd.DataFrame) -> str:
    table = pd.DataFrame(rows).set_index("setting")
    target = paper.loc[corpus.name]
    for col in TARGETS:
        table[f"{col}_rel"] = table[col] / target[col] - 1
    within = table[[f"{c}_rel" for c in TARGETS]].abs().le(TOLERANCE).all(axis=1)
    table["all4_within_10pct"] = within
    head = pd.DataFrame([{"setting": "paper Table 1 (human annotators)", **target[SHOWN].to_dict()}])
    return (
        f"{corpus.name}: Table 1 of the SIMULATED panel per setting (not human data)\n"
        + pd.concat([head.set_index("setting"), table]).round(3).to_string()
    )


# --search: the keys it moves and their bounds (record_weight stays a weak prior).
SEARCH_BOUNDS = {
    "label_weight": (0.0, 0.9),
    "record_weight": (0.0, 0.3),
    "knn_tau": (0.0, 1.0),
    "panel.sure": (0.2, 0.9),
    "panel.floor": (0.05, 0.6),
    "panel.yes_mean": (0.15, 0.9),
    "panel.unsure_mean": (0.02, 0.6),
    "panel.unsure_sd": (0.0, 0.3),
    "panel.noise_mean": (0.0, 0.25),
}


def get_key(simulation: dict, dotted: str) -> float:
    section, _, key = dotted.rpartition(".")
    return float((simulation[section] if section else simulation)[key])


def deviations(corpora: list[Corpus], simulation: dict, seed: int, paper: pd.DataFrame) -> np.ndarray:
    """Relative deviations from the paper of the four targets, and the not-a-digit
    share's in units of NAN_SCALE points, per corpus."""
    out = []
    for corpus in corpora:
        row = table1_row(corpus.name, corpus.study(corpus.labels(simulation, seed)), "simulated")
        out += [row[c] / paper.loc[corpus.name, c] - 1 for c in TARGETS]
        out.append((row["nan_pct"] - paper.loc[corpus.name, "nan_pct"]) / NAN_SCALE)
    return np.array(out)


def search(corpora: list[Corpus], base: dict, steps: int, seed: int, paper: pd.DataFrame) -> dict:
    """Seeded local random search that lowers the sum of squared relative deviations.

    Squared deviations, not the worst one: a target that no setting reaches (e.g. an
    agreement the images do not allow) must not stop the others from moving.
    """
    rng = np.random.default_rng(0)
    best = base
    best_dev = deviations(corpora, base, seed, paper)
    print(f"search start: deviations {np.round(best_dev, 3).tolist()}", flush=True)
    keys = list(SEARCH_BOUNDS)
    for step in range(steps):
        candidate = copy.deepcopy(best)
        for key in rng.choice(keys, size=int(rng.integers(1, 4)), replace=False):
            low, high = SEARCH_BOUNDS[key]
            value = np.clip(get_key(candidate, key) + rng.normal(0, 0.08 * (high - low)), low, high)
            grid = 0.05 if key in ("label_weight", "record_weight", "knn_tau") else 0.005
            set_key(candidate, key, round(round(float(value) / grid) * grid, 3))
        dev = deviations(corpora, candidate, seed, paper)
        if (dev**2).sum() < (best_dev**2).sum():
            best, best_dev = candidate, dev
            moved = {k: get_key(best, k) for k in keys}
            print(f"step {step}: deviations {np.round(dev, 3).tolist()} {moved}", flush=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", help="results folder of a default run")
    parser.add_argument("--corpus", nargs="+", default=["mnist", "mukhoti"])
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="fixed overrides of annotation.simulation (panel.<key> for the panel's)",
    )
    parser.add_argument("--key", help="annotation.simulation key to sweep, or panel.<key>")
    parser.add_argument("--values", nargs="+", type=float, default=[])
    parser.add_argument(
        "--search",
        type=int,
        default=0,
        metavar="STEPS",
        help="first move the panel by a seeded local search of STEPS steps toward the paper",
    )
    parser.add_argument("--config", default=str(REPO / "workflow_config.yaml"))
    args = parser.parse_args()

    config = yaml.safe_load(Path(args.config).read_text())["annotation"]
    base = copy.deepcopy(config["simulation"])
    for item in args.set:
        key, _, value = item.partition("=")
        set_key(base, key, float(value))
    results = Path(args.results)
    reference = reference_digits(io.read_images(results / "dedup/mnist.parquet"))
    paper = pd.read_csv(REPO / "resources/annotation/paper_table1.csv").set_index("corpus")
    gold_corpus = config["campaign"]["gold_corpus"]
    corpora = [Corpus(results, name, gold_corpus, reference) for name in args.corpus]
    settings = [("config" + (" + " + " ".join(args.set) if args.set else ""), base)]
    if args.search:
        base = search(corpora, base, args.search, int(config["seed"]), paper)
        settings = [("searched", base)]
        print(yaml.safe_dump({"simulation": base}, sort_keys=False))
    if args.key:
        settings = []
        for value in args.values:
            simulation = copy.deepcopy(base)
            set_key(simulation, args.key, value)
            settings.append((f"{args.key}={value:g}", simulation))

    for corpus in corpora:
        rows = [
            {"setting": f"SIMULATED {label}", **corpus.row(corpus.labels(sim, int(config["seed"])))}
            for label, sim in settings
        ]
        print(report(corpus, rows, paper), flush=True)


if __name__ == "__main__":
    main()
