"""Rule dedup: one corpus without the duplicates of itself and of the corpora above it."""

from softdigits import jobs
from softdigits.dedup import duplicates

log = jobs.start(snakemake)
params = snakemake.params
duplicates.run_corpus(
    snakemake.wildcards.corpus,
    inputs=dict(zip(params.corpora, snakemake.input.corpora)),
    output=snakemake.output.images,
    priority=list(params.priority),
    near=duplicates.NearDuplicates(**params.near_duplicates),
)
