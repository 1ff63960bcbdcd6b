"""Rule generator_ensemble: MNIST test accuracy of each member and of the ensemble."""

import json
from pathlib import Path

from softdigits import generator, io, jobs

log = jobs.start(snakemake)
jobs.torch_threads(snakemake.threads)
mnist = generator.read_mnist(snakemake.input.mnist)
members = [generator.load_member(path) for path in snakemake.input.members]
summaries = [json.loads(Path(path).read_text()) for path in snakemake.input.summaries]
table = generator.ensemble_accuracy(members, summaries, mnist)
log.info("ensemble test accuracy:\n%s", table.to_string(index=False))
io.write_csv(table, snakemake.output.accuracy)
