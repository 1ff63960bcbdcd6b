"""Rule training_targets: one target's labels of every study image, for a reader to check."""

from softdigits import jobs
from softdigits.training.targets import write_targets

log = jobs.start(snakemake)
built = write_targets(
    snakemake.input.study,
    snakemake.wildcards.target,
    snakemake.params.not_a_digit,
    dict(snakemake.params.params),
    snakemake.output[0],
)
log.info("%d usable of %d images; %s", int(built.usable.sum()), len(built.usable), built.details)
