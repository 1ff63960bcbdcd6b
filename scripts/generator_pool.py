"""Rule generator_pool: mix, decode and score the candidate pool; keep what passes the filter."""

from softdigits import generator, io, jobs

log = jobs.start(snakemake)
jobs.torch_threads(snakemake.threads)
params = snakemake.params
mnist = generator.read_mnist(snakemake.input.mnist)
summary = generator.build_pool(
    generator.load_vae(snakemake.input.vae),
    [generator.load_member(path) for path in snakemake.input.members],
    mnist,
    generator.settings(generator.MixSettings, params.mixing),
    generator.settings(generator.FilterSettings, params.filter),
    params.seed,
    snakemake.output.pool,
)
io.write_json(summary, snakemake.output.summary)
