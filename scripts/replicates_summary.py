"""Rule replicates_summary: every replicate's headline numbers and findings, side by side."""

from pathlib import Path

from softdigits import jobs
from softdigits.evaluation.replicates import write_summary

log = jobs.start(snakemake)
folders = {r: Path(path).parent for r, path in zip(snakemake.params.replicates, snakemake.input.headline)}
summary = write_summary(folders, snakemake.output.md, snakemake.output.json, labels="")
log.info("%d replicates; %d conditions", len(folders), len(summary["conditions"]))
