"""Rule aggregate_labels: QC + aggregation, the same function as `softdigits aggregate`."""

from softdigits import cli, jobs

jobs.start(snakemake)
cli.aggregate_file(snakemake.input.raw, snakemake.output.labels, snakemake.output.qc, origin=snakemake.params.origin)
