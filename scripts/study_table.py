"""Rule study_table: selection + images + aggregated labels, the table training reads."""

from softdigits import jobs
from softdigits.annotation import study

jobs.start(snakemake)
study.run_study(
    corpus=snakemake.wildcards.corpus,
    origin=snakemake.params.origin,
    images_path=snakemake.input.images,
    data_map_path=snakemake.input.data_map,
    selection_path=snakemake.input.get("selection"),
    labels_path=snakemake.input.get("labels"),
    released_path=snakemake.input.get("released"),
    out_path=snakemake.output.study,
)
