"""Rule corpus: one corpus into the images contract, read by its registry entry (softdigits.corpora.CORPORA)."""

from softdigits import jobs
from softdigits.corpora import CORPORA
from softdigits.corpora.base import write_corpus

log = jobs.start(snakemake)
corpus, params = snakemake.wildcards.corpus, snakemake.params
table, metadata = CORPORA[corpus].read(snakemake.input, params.origin, **params.settings)
write_corpus(table, snakemake.output[0], corpus, params.origin, params.limit_per_split, **metadata)
