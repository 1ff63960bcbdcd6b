"""Rule generator_vae: the DDU recipe's VAE on MNIST training images."""

from softdigits import generator, io, jobs

log = jobs.start(snakemake)
jobs.torch_threads(snakemake.threads)
params = snakemake.params
mnist = generator.read_mnist(snakemake.input.mnist)
vae = generator.train_vae(
    mnist.train_pixels, generator.settings(generator.VaeSettings, params.vae), generator.vae_seed(params.seed)
)
io.write_csv(vae.history, snakemake.output.history)
generator.save_vae(vae, snakemake.output.vae)
