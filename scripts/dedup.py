"""Rule dedup: one corpus without the duplicates of itself and of the corpora above it."""

from softdigits import dedup, jobs

log = jobs.start(snakemake)
params = snakemake.params
dedup.run_corpus(
    snakemake.wildcards.corpus,
    inputs=dict(zip(params.corpora, snakemake.input.corpora)),
    output=snakemake.output.images,
    priority=list(params.priority),
    near=dedup.NearDuplicates(**params.near_duplicates),
)
