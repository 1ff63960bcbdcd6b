"""Rule headline: the run's headline numbers, read from its outputs."""

from softdigits import jobs
from softdigits.evaluation.headline import headline, write_headline

log = jobs.start(snakemake)
numbers = headline(
    duplicates=snakemake.input.duplicates,
    table1=snakemake.input.table1,
    table9=snakemake.input.table9,
    findings=snakemake.input.findings,
)
write_headline(numbers, snakemake.output.json, snakemake.output.md, labels=snakemake.params.human_labels)
log.info("%s", {k: len(v) for k, v in numbers.items()})
