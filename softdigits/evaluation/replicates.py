"""Whole-study replicates, summarised: how much of a run's result is the run.

With `replicates: [0, 1, 2]` the workflow runs the whole study once per replicate, each with
its own global seed for every random step (`softdigits.config.replicate_config`) and its own
results folder. This module reads every replicate's `headline.json` and `findings.json` and
writes, for a reader who wants to tell a robust result from noise:
- per claim, the verdict of each replicate;
- per condition, in how many replicates it holds, fails or is inconclusive;
- per headline number (duplicates removed, Table 1, Table 9, the crossover margins), the value
  of each replicate, its minimum, maximum, mean and sample sd.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from softdigits.io import markdown_table, write_json, write_text

# headline section -> (its key columns, its number columns)
NUMBERS = {
    "duplicates": (["corpus"], ["n_removed", "share_removed"]),
    "table1": (["corpus"], ["hlv_pct", "orig_label_agreement_pct", "nan_pct", "u_mean", "u_prop"]),
    "table9": (["corpus", "target", "model", "eval_set"], ["accuracy_pct"]),
    "crossover": (["corpus", "model", "comparison"], ["trail_pp", "lead_pp"]),
}


def cell_name(cell: dict) -> str:
    return ", ".join(f"{v}" for v in cell.values())


def spread(headlines: dict[int, dict]) -> pd.DataFrame:
    """One row per headline number: its value in every replicate and the spread across them."""
    rows = []
    for section, (keys, numbers) in NUMBERS.items():
        frames = [pd.DataFrame(h[section]).assign(replicate=r) for r, h in headlines.items() if h.get(section)]
        if not frames:
            continue
        long = pd.concat(frames, ignore_index=True)
        for number in numbers:
            wide = long.pivot_table(index=keys, columns="replicate", values=number, aggfunc="first")
            for key, values in wide.iterrows():
                v = values.to_numpy(dtype=float)
                rows.append(
                    {
                        "section": section,
                        "cell": ", ".join(map(str, key if isinstance(key, tuple) else (key,))),
                        "number": number,
                        **{f"replicate {r}": x for r, x in zip(wide.columns, v)},
                        "min": np.nanmin(v),
                        "max": np.nanmax(v),
                        "mean": np.nanmean(v),
                        "sd": np.nanstd(v, ddof=1) if np.isfinite(v).sum() > 1 else np.nan,
                    }
                )
    return pd.DataFrame(rows)


def conditions(findings: dict[int, dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per claim: the verdict of each replicate; per condition: its outcome counts)."""
    verdicts, outcomes = {}, {}
    for r, found in findings.items():
        for i, f in enumerate(found["findings"], 1):
            verdicts.setdefault((i, f["claim"]), {})[r] = f["verdict"]
            for c in f["conditions"]:
                outcomes.setdefault((i, cell_name(c["cell"]), c["statement"]), {})[r] = c["outcome"]
    claims = pd.DataFrame(
        [
            {"claim": f"{i}. {claim}", **{f"replicate {r}": v for r, v in sorted(by.items())}}
            for (i, claim), by in verdicts.items()
        ]
    )
    n = len(findings)
    rows = []
    for (i, cell, statement), by in outcomes.items():
        values = list(by.values())
        rows.append(
            {
                "claim": i,
                "condition": cell,
                "rule": statement,
                "holds": values.count("holds"),
                "fails": values.count("fails"),
                "inconclusive": values.count("inconclusive"),
                "of": n,
            }
        )
    return claims, pd.DataFrame(rows)


def summarise(folders: dict[int, str | Path]) -> dict[str, pd.DataFrame]:
    headlines = {r: json.loads((Path(f) / "headline.json").read_text()) for r, f in folders.items()}
    findings = {r: json.loads((Path(f) / "findings.json").read_text()) for r, f in folders.items()}
    claims, per_condition = conditions(findings)
    return {"verdicts": claims, "conditions": per_condition, "numbers": spread(headlines)}


def write_summary(folders: dict[int, str | Path], md, json_path, *, labels: str) -> dict[str, pd.DataFrame]:
    """Rule replicates_summary: the summary of every replicate's run, as Markdown and JSON."""
    summary = summarise(folders)
    n = len(folders)
    held_everywhere = int((summary["conditions"]["holds"] == n).sum()) if len(summary["conditions"]) else 0
    lines = [
        f"# Whole-study replicates: {n} runs of the study, each with its own global seed",
        "",
        labels,
        "",
        "Each replicate reruns every random step (the generator, cartography, selection, the simulated "
        "panel, the training seeds) with a seed of its own; the spread below is what another realisation "
        "of the same study gives, as another machine's rounding would.",
        "",
        f"{held_everywhere} of {len(summary['conditions'])} conditions hold in every replicate.",
        "",
        "## Verdicts",
        "",
        markdown_table(summary["verdicts"]),
        "",
        "## Conditions: in how many replicates each holds",
        "",
        markdown_table(summary["conditions"]),
        "",
        "## Headline numbers across replicates",
        "",
        markdown_table(summary["numbers"], floatfmt="{:.4g}"),
        "",
    ]
    write_text("\n".join(lines), md)
    write_json({k: v.astype(object).where(v.notna(), None).to_dict("records") for k, v in summary.items()}, json_path)
    return summary
