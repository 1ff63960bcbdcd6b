"""Rule corpus_ardis: ARDIS dataset IV from its downloaded RAR archive."""

from softdigits import jobs
from softdigits.corpora import sources

log = jobs.start(snakemake)
params = snakemake.params
table = sources.ardis_from_archive(snakemake.input.archive)
sources.write_corpus(table, snakemake.output[0], "ardis", params.origin, params.limit_per_split)
