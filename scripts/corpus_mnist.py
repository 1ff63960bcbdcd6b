"""Rule corpus_mnist: MNIST from the offline package copy or the official IDX files."""

from softdigits import jobs
from softdigits.corpora import sources

log = jobs.start(snakemake)
params = snakemake.params
if params.origin == "package":
    table = sources.mnist_from_package(params.idx_checksums)
else:
    files = {name: snakemake.input[name] for name in sources.MNIST_FILES}
    table = sources.mnist_from_idx(files, params.idx_checksums)
sources.write_corpus(table, snakemake.output[0], "mnist", params.origin, params.limit_per_split)
