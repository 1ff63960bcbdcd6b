"""Corpus size (Table 5): all runs in one table, and the paper's layout in md/csv/parquet."""

from softdigits.jobs import start

log = start(snakemake)

import pandas as pd  # noqa: E402

from softdigits.io import write_csv, write_table, write_text  # noqa: E402
from softdigits.selection.corpus_size import table5, table5_markdown  # noqa: E402

runs = pd.concat([pd.read_parquet(path) for path in snakemake.input.runs], ignore_index=True)
runs = runs.sort_values(["samples_per_digit", "repetition"], ignore_index=True)
table = table5(runs)
log.info("Table 5:\n%s", table.to_string(index=False))
write_table(runs, snakemake.output.runs)
write_table(table, snakemake.output.parquet)
write_csv(table, snakemake.output.csv)
write_text(table5_markdown(table, runs), snakemake.output.md)
