"""Rule generator_select: entropy-stratified subsample of the pool -> corpus + generation records."""

from softdigits import io, jobs
from softdigits.generator import inputs, select

log = jobs.start(snakemake)
params = snakemake.params
mnist = inputs.read_mnist(snakemake.input.mnist)
corpus, records, summary = select.select_corpus(
    snakemake.input.pool, mnist, inputs.settings(select.StratifySettings, params.stratify), params.seed
)
bins = summary.pop("bins")
meta = {
    "recipe": "DDU Ambiguous-MNIST, regenerated offline",
    "labels": "synthetic: mean softmax of a LeNet-5 ensemble (model-made, not human)",
    "seed": params.seed,
    **summary,
}
io.write_csv(bins, snakemake.output.bins)
io.write_table(records, snakemake.output.records, metadata=meta)
io.write_table(corpus, snakemake.output.corpus, metadata=meta)
