"""Rule corpus_weiss: Weiss & Tonella's ambiguous MNIST from its CSV release."""

from softdigits import jobs
from softdigits.corpora import sources

log = jobs.start(snakemake)
params = snakemake.params
table = sources.weiss_from_csv(snakemake.input.csv, params.keep_splits)
sources.write_corpus(
    table,
    snakemake.output[0],
    "weiss",
    params.origin,
    params.limit_per_split,
    keep_splits=list(params.keep_splits),
)
