"""The findings page: each claim of `claims.CLAIMS` checked against this run, with its verdict.

A claim's check gives its conditions (`evaluation.conditions`: each holds, fails or is
inconclusive, with its estimate, interval, p, stability and the paper's value). Over the n
conditions of a claim, h holding, f failing and i inconclusive, the verdict is:

- **supported**: every condition holds (h = n);
- **partly**: more than half hold (h > n/2);
- **inconclusive**: at most half hold and at least half are inconclusive (i >= n/2): the
  evidence does not decide either way;
- **not reproduced**: otherwise (at most half hold and fewer than half are undecided, so a
  large share fails), and whenever the run cannot test the claim (a corpus or target it
  needs was not run; the page says which).

A condition is fragile when it is inconclusive or holds in fewer than `STABLE` of the seed
resamples. Written as Markdown (`findings.md`) and JSON (`findings.json`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from softdigits.corpora import corpus_name
from softdigits.evaluation.claims import CLAIMS, Evidence, Result, words
from softdigits.evaluation.conditions import N_RESAMPLES, POWER, Condition
from softdigits.evaluation.dynamics import GOLD_NOTES
from softdigits.io import markdown_table

VERDICTS = ("supported", "partly", "inconclusive", "not reproduced")
STABLE = 0.8  # a condition holding in fewer of the seed resamples is fragile


def verdict(outcomes: list[str], not_run: list[str] | None = None) -> str:
    """The claim's verdict from its conditions' outcomes (see the module docstring)."""
    n = len(outcomes)
    if not_run or n == 0:
        return "not reproduced"
    holds, undecided = outcomes.count("holds"), outcomes.count("inconclusive")
    if holds == n:
        return "supported"
    if holds > n / 2:
        return "partly"
    if undecided >= n / 2:
        return "inconclusive"
    return "not reproduced"


def fragile(c: Condition) -> bool:
    return c.outcome == "inconclusive" or not (np.isfinite(c.stability) and c.stability >= STABLE)


@dataclass
class Finding:
    key: str
    claim: str
    paper: str
    rule: str
    beyond_paper: bool
    verdict: str
    conditions: list[Condition]
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(c.outcome == outcome for c in self.conditions)

    @property
    def seeds_needed(self) -> float:
        """The median over its conditions of the seeds needed for 80% power (NaN where none)."""
        values = [c.seeds_needed for c in self.conditions if np.isfinite(c.seeds_needed) or c.seeds_needed == np.inf]
        return float(np.median(values)) if values else np.nan

    @property
    def detail(self) -> str:
        n = len(self.conditions)
        if self.not_run:
            return f"Not run: this run lacks {', '.join(self.not_run)}, so the claim cannot be tested."
        if n == 0:
            return "Not testable in this run: no condition could be formed."
        n_fragile = sum(fragile(c) for c in self.conditions)
        text = (
            f"{self.count('holds')} of {n} conditions hold, {self.count('fails')} fail, "
            f"{self.count('inconclusive')} are inconclusive; {n_fragile} of {n} are fragile "
            f"(inconclusive, or holding in fewer than {STABLE:.0%} of the seed resamples)."
        )
        if n_fragile > n / 2:
            text += " Most conditions are fragile with this run's seeds: more seeds (training.seeds) would decide more of them."
        return text

    def as_dict(self) -> dict:
        def rows(frame: pd.DataFrame) -> list[dict]:
            return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")

        return {
            "key": self.key,
            "claim": self.claim,
            "paper": self.paper,
            "rule": self.rule,
            "beyond_paper": self.beyond_paper,
            "verdict": self.verdict,
            "conditions_met": self.count("holds"),
            "conditions_failed": self.count("fails"),
            "conditions_inconclusive": self.count("inconclusive"),
            "conditions": [c.as_dict() for c in self.conditions],
            "seeds_needed_median": None if not np.isfinite(self.seeds_needed) else self.seeds_needed,
            "not_run": self.not_run,
            "detail": self.detail,
            "tables": [{"caption": c, "rows": rows(t)} for c, t in self.tables],
        }


def check_findings(ev: Evidence, keys: list[str] | None = None) -> list[Finding]:
    """Every claim of the registry (or those of `keys`), checked."""
    fill = {
        "alpha": ev.alpha,
        "modest_pp": ev.settings["modest_pp"],
        "negligible_rho": ev.settings["negligible_rho"],
        "gold": "model data maps with " + GOLD_NOTES[ev.settings["data_map_gold"]],
    }
    found = []
    for key, claim in CLAIMS.items():
        if keys is not None and key not in keys:
            continue
        text = words()[key]
        result: Result = claim.check(ev)
        found.append(
            Finding(
                key=key,
                claim=text["claim"],
                paper=text["paper"],
                rule=text["rule"].format(**fill),
                beyond_paper=claim.beyond_paper,
                verdict=verdict([c.outcome for c in result.conditions], result.not_run),
                conditions=result.conditions,
                tables=result.tables,
                not_run=result.not_run,
            )
        )
    return found


# ------------------------------------------------------------------ the page


def preface(origins: dict[str, str]) -> str:
    kinds = set(origins.values())
    if kinds == {"simulated"}:
        return (
            "The human labels in this run are SIMULATED: a simulated annotator panel, not human data. "
            "The checks below exercise the analysis; they say nothing about real human uncertainty."
        )
    if "simulated" in kinds:
        sim = ", ".join(sorted(c for c, o in origins.items() if o == "simulated"))
        return (
            f"The human labels of {sim} in this run are SIMULATED (not human data); the others are real "
            "human annotations. Read each claim with that in mind."
        )
    return (
        "The human labels in this run are real human annotations ("
        + ", ".join(f"{corpus_name(c)}: {o}" for c, o in sorted(origins.items()))
        + ")."
    )


def how_to_read(alpha: float) -> list[str]:
    return [
        "How to read it:",
        "",
        f"- Each condition shows its estimate, a 95% interval, p (paired tests: two-sided paired t-test over seeds, "
        f"Holm-adjusted in its family, alpha = {alpha}; correlations: permutation p), its **stability** (the share "
        f"of {N_RESAMPLES} seeded bootstrap resamples of the seeds in which it still holds; resamples repeat seeds, "
        "so this is a robustness score, not a probability) and, where the paper gives a number, the paper's value "
        "and the ratio of ours to it.",
        "- Intervals: paired t over seeds for differences; Welch for a difference between corpora; Fisher z "
        "(variance 1.06 / (n − 3)) over images for Spearman's rho; Zou's method for the difference of two "
        "correlations that share a variable.",
        "- A condition **holds** when the evidence is in the paper's direction (p < alpha after Holm, or the whole "
        "interval inside a bound), **fails** when it is in the opposite direction just as clearly (or the whole "
        "interval outside the bound), and is **inconclusive** otherwise: an interval across 0 or across a bound "
        "is neither a pass nor a fail.",
        "- Verdicts: **supported** (every condition holds), **partly** (more than half hold), **inconclusive** "
        "(at most half hold and at least half are inconclusive), **not reproduced** (at most half hold and "
        "fewer than half are undecided, or the run cannot test the claim).",
        f"- Seeds for {POWER:.0%} power: how many seeds a paired t-test needs to detect the paper's effect (this "
        "run's own where the paper gives no number) at the family's Holm-adjusted level, from the observed spread "
        "over seeds. Correlations pool the seeds into one data map, so they have none.",
    ]


def render(findings: list[Finding], origins: dict[str, str], *, alpha: float) -> str:
    lines = [
        "# Findings check: the paper's section 3 against this run",
        "",
        preface(origins),
        "",
        "Claims 1-4 are the paper's; claims 5 and 6 go beyond it (the controls and selective prediction).",
        "Numbers: test split; differences are treatment − control, averaged over seeds.",
        "",
        *how_to_read(alpha),
        "",
    ]
    overview = pd.DataFrame(
        [
            {
                "claim": f"{i}. {f.claim}".replace("|", "\\|"),
                "verdict": f.verdict,
                "hold / fail / inconclusive": f"{f.count('holds')} / {f.count('fails')} / {f.count('inconclusive')}",
                "fragile": sum(fragile(c) for c in f.conditions),
                "seeds for 80% power (median)": f.seeds_needed,
            }
            for i, f in enumerate(findings, 1)
        ]
    )
    lines += [markdown_table(overview, floatfmt="{:.0f}"), ""]
    for i, f in enumerate(findings, 1):
        lines += [
            f"## {i}. {f.claim}: **{f.verdict}**",
            "",
            f"Paper: {f.paper}",
            "",
            f"Rule: {f.rule}",
            "",
            f"Result: {f.detail}",
            "",
        ]
        for caption, frame in f.tables:
            if len(frame):
                lines += [f"{caption}:", "", markdown_table(frame, floatfmt="{:.4g}"), ""]
    return "\n".join(lines) + "\n"


def write_findings(*, inputs: dict[str, str], studies: dict[str, str], settings: dict, md, json_path) -> list[Finding]:
    """Rule findings: read the evaluation files and study tables; write the page and its JSON."""
    from softdigits.io import write_json, write_text
    from softdigits.study_table import labels_origin
    from softdigits.study_table import read_study_frame as read_study

    origins = {corpus: labels_origin(path) for corpus, path in studies.items()}
    frames = {name: (lambda p=path: pd.read_parquet(p)) for name, path in inputs.items() if name != "paper_table9"}
    frames["paper_table9"] = lambda: pd.read_csv(inputs["paper_table9"])
    ev = Evidence(frames, {corpus: read_study(path) for corpus, path in studies.items()}, settings)
    found = check_findings(ev)
    write_text(render(found, origins, alpha=settings["alpha"]), md)
    write_json(
        {
            "human_labels": origins,
            "preface": preface(origins),
            "settings": settings,
            "verdicts": list(VERDICTS),
            "findings": [f.as_dict() for f in found],
        },
        json_path,
    )
    return found
