"""Rule generator_ensemble: MNIST test accuracy of each member and of the ensemble."""

import json
from pathlib import Path

from softdigits import io, jobs
from softdigits.generator import ensemble, inputs

log = jobs.start(snakemake)
jobs.torch_threads(snakemake.threads)
mnist = inputs.read_mnist(snakemake.input.mnist)
members = [ensemble.load_member(path) for path in snakemake.input.members]
summaries = [json.loads(Path(path).read_text()) for path in snakemake.input.summaries]
table = ensemble.ensemble_accuracy(members, summaries, mnist)
log.info("ensemble test accuracy:\n%s", table.to_string(index=False))
io.write_csv(table, snakemake.output.accuracy)
