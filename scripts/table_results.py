"""Rule table_results: one table of the registry (softdigits.evaluation.tables.TABLES)."""

from softdigits.jobs import start

log = start(snakemake)

from softdigits.evaluation.tables import TableInputs, write_evaluation_table  # noqa: E402

params = snakemake.params
data = TableInputs(
    dict(snakemake.input.items()),
    order={"corpus": list(params.corpora), "model": list(params.models), "target": list(params.targets)},
    alpha=params.alpha,
    negligible_rho=params.negligible_rho,
    data_map_gold=params.data_map_gold,
)
write_evaluation_table(
    snakemake.wildcards.table,
    data,
    studies=dict(zip(params.corpora, snakemake.input.study)),
    outputs={ext: snakemake.output[ext] for ext in ("md", "csv", "parquet")},
)
