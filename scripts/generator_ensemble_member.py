"""Rule generator_ensemble_member: one LeNet-5 (no padding) of the labelling ensemble."""

from softdigits import generator, io, jobs

log = jobs.start(snakemake)
jobs.torch_threads(snakemake.threads)
params = snakemake.params
mnist = generator.read_mnist(snakemake.input.mnist)
member, summary = generator.train_member(
    mnist,
    generator.settings(generator.MemberSettings, params.settings),
    generator.member_seed(params.seed, params.member),
)
io.write_json({"member": params.member, **summary}, snakemake.output.summary)
generator.save_member(member, snakemake.output.checkpoint)
