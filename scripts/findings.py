"""The findings check: the paper's section 3 claims against this run."""

from softdigits.jobs import start

log = start(snakemake)

from softdigits.evaluation.findings import write_findings  # noqa: E402

write_findings(
    metrics=snakemake.input.metrics,
    summary=snakemake.input.summary,
    tests=snakemake.input.tests,
    spearman=snakemake.input.spearman,
    data_maps=snakemake.input.data_maps,
    studies=dict(zip(snakemake.params.corpora, snakemake.input.study)),
    alpha=snakemake.params.alpha,
    modest_pp=snakemake.params.modest_gain_pp,
    negligible_rho=snakemake.params.negligible_rho,
    data_map_gold=snakemake.params.data_map_gold,
    thresholds=dict(snakemake.params.region_thresholds),
    md=snakemake.output.md,
    json_path=snakemake.output.json,
)
