"""Rule generator_figures: sample grid by entropy band and the entropy histogram."""

from softdigits import generator_plots, jobs

log = jobs.start(snakemake)
params = snakemake.params
stratify = params.stratify
generator_plots.samples_by_entropy(
    snakemake.input.corpus, snakemake.output.samples, stratify["low"], stratify["high"], params.seed
)
generator_plots.entropy_histogram(
    snakemake.input.corpus, snakemake.input.bins, snakemake.output.histogram, stratify["power"]
)
