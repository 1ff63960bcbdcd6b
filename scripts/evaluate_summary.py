"""Merge the per-corpus evaluation files; seed summaries and paired tests."""
from softdigits.jobs import start

log = start(snakemake)

from softdigits.stats import summarise_evaluation  # noqa: E402

summarise_evaluation(
    {name: list(snakemake.input[name]) for name in ("metrics", "reliability", "jsd", "data_map", "spearman")},
    dict(snakemake.output.items()),
    comparisons=[tuple(c) for c in snakemake.params.comparisons], alpha=snakemake.params.alpha,
)
