"""Rule generator_ensemble_member: one LeNet-5 (no padding) of the labelling ensemble."""

from softdigits import io, jobs
from softdigits.generator import ensemble, inputs

log = jobs.start(snakemake)
jobs.torch_threads(snakemake.threads)
params = snakemake.params
mnist = inputs.read_mnist(snakemake.input.mnist)
member, summary = ensemble.train_member(
    mnist,
    inputs.settings(ensemble.MemberSettings, params.settings),
    ensemble.member_seed(params.seed, params.member),
)
io.write_json({"member": params.member, **summary}, snakemake.output.summary)
ensemble.save_member(member, snakemake.output.checkpoint)
