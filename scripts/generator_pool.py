"""Rule generator_pool: mix, decode and score the candidate pool; keep what passes the filter."""

from softdigits import io, jobs
from softdigits.generator import ensemble, inputs, pool, vae

log = jobs.start(snakemake)
jobs.torch_threads(snakemake.threads)
params = snakemake.params
mnist = inputs.read_mnist(snakemake.input.mnist)
summary = pool.build_pool(
    vae.load_vae(snakemake.input.vae),
    [ensemble.load_member(path) for path in snakemake.input.members],
    mnist,
    inputs.settings(pool.MixSettings, params.mixing),
    inputs.settings(pool.FilterSettings, params.filter),
    params.seed,
    snakemake.output.pool,
    threads=snakemake.threads,
)
io.write_json(summary, snakemake.output.summary)
