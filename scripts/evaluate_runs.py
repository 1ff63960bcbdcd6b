"""Test metrics, reliability bins and the post-hoc views (temperature scaling,
selective prediction, disagreement detection) of every training run of one corpus."""

from softdigits.jobs import start

log = start(snakemake)

from softdigits.evaluation.runs import evaluate_runs, posthoc_evaluation
from softdigits.io import write_table  # noqa: E402
from softdigits.study_table import labels_origin  # noqa: E402

params = snakemake.params
runs = [(m, t, s, path) for (m, t, s), path in zip(params.runs, snakemake.input.predictions)]
common = dict(
    human_column=params.human_soft_label,
    not_a_digit=params.not_a_digit,
    splits=list(params.splits),
    n_bins=params.ece_bins,
    eps=params.kl_epsilon,
)
metrics, reliability = evaluate_runs(snakemake.input.study, runs, **common)
posthoc = posthoc_evaluation(snakemake.input.study, runs, target_params=params.target_params, **common)
corpus = snakemake.wildcards.corpus
meta = {"labels_origin": labels_origin(snakemake.input.study), "not_a_digit": params.not_a_digit}
write_table(metrics.assign(corpus=corpus), snakemake.output.metrics, metadata=meta)
write_table(reliability.assign(corpus=corpus), snakemake.output.reliability, metadata=meta)
for name, frame in posthoc.items():
    write_table(frame.assign(corpus=corpus), snakemake.output[name], metadata=meta)
log.info(
    "%d metric rows from %d runs; temperatures %s",
    len(metrics),
    len(runs),
    posthoc["temperature"]["temperature"].round(3).tolist(),
)
