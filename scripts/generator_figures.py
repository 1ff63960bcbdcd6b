"""Rule generator_figures: sample grid by entropy band and the entropy histogram."""

from softdigits import jobs
from softdigits.generator import figures

log = jobs.start(snakemake)
params = snakemake.params
stratify = params.stratify
figures.samples_by_entropy(
    snakemake.input.corpus, snakemake.output.samples, stratify["low"], stratify["high"], params.seed
)
figures.entropy_histogram(snakemake.input.corpus, snakemake.input.bins, snakemake.output.histogram, stratify["power"])
