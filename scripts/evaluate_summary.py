"""Merge the per-corpus evaluation files; seed summaries and paired tests (paper, controls, temperature)."""

from softdigits.jobs import start

log = start(snakemake)

from softdigits.evaluation.stats import POSTHOC_VIEWS, summarise_evaluation  # noqa: E402

names = ("metrics", "reliability", "jsd", "data_map", "data_map_seeds", "spearman") + POSTHOC_VIEWS
summarise_evaluation(
    {name: list(snakemake.input[name]) for name in names},
    dict(snakemake.output.items()),
    comparisons=[tuple(c) for c in snakemake.params.comparisons],
    control_comparisons=[tuple(c) for c in snakemake.params.control_comparisons],
    alpha=snakemake.params.alpha,
)
