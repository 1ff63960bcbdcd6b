"""Rule replicates_summary: every replicate's headline numbers and findings, side by side."""

from pathlib import Path

from softdigits import jobs
from softdigits.evaluation.replicates import write_summary
from softdigits.study_table import labels_sentence, study_origins

log = jobs.start(snakemake)
folders = {r: Path(path).parent for r, path in zip(snakemake.params.replicates, snakemake.input.headline)}
labels = labels_sentence(study_origins(dict(zip(snakemake.params.corpora, snakemake.input.study))))
summary = write_summary(folders, snakemake.output.md, snakemake.output.json, labels=labels)
log.info("%d replicates; %d conditions", len(folders), len(summary["conditions"]))
