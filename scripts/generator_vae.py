"""Rule generator_vae: the DDU recipe's VAE on MNIST training images."""

from softdigits import io, jobs
from softdigits.generator import inputs, vae

log = jobs.start(snakemake)
jobs.torch_threads(snakemake.threads)
params = snakemake.params
mnist = inputs.read_mnist(snakemake.input.mnist)
trained = vae.train_vae(mnist.train_pixels, inputs.settings(vae.VaeSettings, params.vae), vae.vae_seed(params.seed))
io.write_csv(trained.history, snakemake.output.history)
vae.save_vae(trained, snakemake.output.vae)
