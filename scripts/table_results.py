"""The paper's Tables 2, 3, 4, 9, 10, the ECE table, the paired tests, Tables 9 and 4 against the paper,
and the tables beyond it (controls, temperature scaling, selective prediction)."""

from softdigits.jobs import start

log = start(snakemake)

from softdigits.evaluation.tables import write_evaluation_tables  # noqa: E402

write_evaluation_tables(
    summary=snakemake.input.summary,
    spearman=snakemake.input.spearman,
    tests=snakemake.input.tests,
    studies=dict(zip(snakemake.params.corpora, snakemake.input.study)),
    order={
        "corpus": list(snakemake.params.corpora),
        "model": list(snakemake.params.models),
        "target": list(snakemake.params.targets),
    },
    paper_table9=snakemake.input.paper_table9,
    paper_table4=snakemake.input.paper_table4,
    data_map_gold=snakemake.params.data_map_gold,
    alpha=snakemake.params.alpha,
    negligible_rho=snakemake.params.negligible_rho,
    outputs=dict(snakemake.output.items()),
    posthoc_summary=snakemake.input.posthoc_summary,
    temperature=snakemake.input.temperature,
)
