"""Test metrics and reliability bins of every training run of one corpus."""
from softdigits.jobs import start

log = start(snakemake)

from softdigits.io import write_table  # noqa: E402
from softdigits.metrics import evaluate_runs, labels_origin  # noqa: E402

runs = [(m, t, s, path) for (m, t, s), path in zip(snakemake.params.runs, snakemake.input.predictions)]
metrics, reliability = evaluate_runs(
    snakemake.input.study, runs,
    human_column=snakemake.params.human_soft_label, not_a_digit=snakemake.params.not_a_digit,
    splits=list(snakemake.params.splits), n_bins=snakemake.params.ece_bins, eps=snakemake.params.kl_epsilon,
)
corpus = snakemake.wildcards.corpus
meta = {"labels_origin": labels_origin(snakemake.input.study), "not_a_digit": snakemake.params.not_a_digit}
write_table(metrics.assign(corpus=corpus), snakemake.output.metrics, metadata=meta)
write_table(reliability.assign(corpus=corpus), snakemake.output.reliability, metadata=meta)
log.info("%d metric rows from %d runs", len(metrics), len(runs))
