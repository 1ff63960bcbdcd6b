"""The headline numbers of one run, in one file: what the README and a replicates summary quote.

`headline.json` (and `headline.md`, the same as tables) holds, per run:
- `duplicates`: per corpus, the images removed by exact dedup and their share (beside the
  paper's Appendix A.2 counts);
- `table1`: per corpus, HLV %, agreement with the original labels %, not-a-digit %, u_mean
  and u_prop of the human labels;
- `table9`: per (corpus, target, model, evaluation set), the overall test accuracy %;
- `crossover`: per (corpus, model, human target), the synthetic-trained minus human-trained
  accuracy (points) on the human majority (the trail) and on the original labels (the lead);
- `verdicts`: per claim, its verdict and how many conditions hold / fail / are inconclusive.

Every number is read from the run's own outputs, never typed in; a replicates run summarises
these files across its replicates (`evaluation.replicates`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from softdigits.io import markdown_table, write_json, write_text

SECTIONS = ("duplicates", "table1", "table9", "crossover", "verdicts")


def headline(*, duplicates, table1, table9, findings) -> dict[str, list[dict]]:
    """The headline numbers of a run from its outputs (paths; see the module docstring)."""
    dup = pd.read_csv(duplicates)
    t1 = pd.read_parquet(table1)
    t9 = pd.read_parquet(table9)
    found = json.loads(Path(findings).read_text())["findings"]
    crossover = []
    for f in found:
        if f["key"] != "synthetic_labels_misaligned":
            continue
        for c in f["conditions"]:
            if "lead (orig set)" in (c.get("extra") or {}):
                crossover.append(
                    {
                        "corpus": c["cell"]["corpus"],
                        "model": c["cell"]["model"],
                        "comparison": c["cell"]["comparison"],
                        "trail_pp": c["estimate"],
                        "lead_pp": c["extra"]["lead (orig set)"],
                        "outcome": c["outcome"],
                    }
                )
    return {
        "duplicates": dup[["corpus", "n_images", "n_removed", "share_removed", "paper_n_removed"]].to_dict("records"),
        "table1": t1[["corpus", "hlv_pct", "orig_label_agreement_pct", "nan_pct", "u_mean", "u_prop"]].to_dict(
            "records"
        ),
        "table9": t9.assign(accuracy_pct=t9["mean"] * 100)[["corpus", "target", "model", "eval_set", "accuracy_pct"]]
        .sort_values(["corpus", "target", "model", "eval_set"])
        .to_dict("records"),
        "crossover": crossover,
        "verdicts": [
            {
                "claim": f["claim"],
                "verdict": f["verdict"],
                "holds": f["conditions_met"],
                "fails": f["conditions_failed"],
                "inconclusive": f["conditions_inconclusive"],
            }
            for f in found
        ],
    }


def write_headline(numbers: dict, json_path, md_path, *, labels: str) -> None:
    write_json(numbers, json_path)
    lines = ["# Headline numbers of this run", "", labels, ""]
    for section in SECTIONS:
        frame = pd.DataFrame(numbers[section])
        if len(frame):
            lines += [f"## {section}", "", markdown_table(frame, floatfmt="{:.4g}"), ""]
    write_text("\n".join(lines), md_path)
