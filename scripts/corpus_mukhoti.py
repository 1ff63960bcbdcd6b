"""Rule corpus_mukhoti: Ambiguous-MNIST from the generator stage or the DDU release."""

from softdigits import io, jobs
from softdigits.corpora import sources

log = jobs.start(snakemake)
params = snakemake.params
if params.origin == "generate":
    table = sources.mukhoti_from_generator(snakemake.input.generated)
    extra = {"generator": io.read_metadata(snakemake.input.generated)}
else:
    table = sources.mukhoti_from_release(snakemake.input.samples, snakemake.input.labels, snakemake.input.predictions)
    extra = {}
sources.write_corpus(table, snakemake.output[0], "mukhoti", params.origin, params.limit_per_split, **extra)
