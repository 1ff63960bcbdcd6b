"""Selection: the integer program over stratum counts, the seeded draw, the strata table."""

from softdigits.jobs import start

log = start(snakemake)

import pyarrow.parquet as pq  # noqa: E402

from softdigits.cartography.maps import read_data_map  # noqa: E402
from softdigits.cartography.train import check_unique_images  # noqa: E402
from softdigits.io import write_csv, write_table, write_text  # noqa: E402
from softdigits.selection.solve import SelectionSpec, select, strata_markdown  # noqa: E402

p = snakemake.params
corpus = snakemake.wildcards.corpus
images = pq.read_table(snakemake.input.images, columns=["image_id", "sha256"])
check_unique_images(images, where=f"{snakemake.input.images}: ")
candidates = read_data_map(snakemake.input.data_map, columns=["image_id", "digit", "region"])
unknown = ~candidates["image_id"].isin(images.column("image_id").to_pandas())
if unknown.any() or len(candidates) != images.num_rows:
    raise ValueError(
        f"{snakemake.input.data_map}: its images differ from {snakemake.input.images} "
        f"({int(unknown.sum())} unknown, {len(candidates)} vs {images.num_rows} rows): rerun cartography"
    )
spec = SelectionSpec(
    budget=dict(p.budget),
    min_easy_per_digit_train=p.min_easy_per_digit_train,
    region_weights=dict(p.region_weights),
    min_per_region_split=dict(p.min_per_region_split),
    seed=p.seed,
    time_limit_s=p.time_limit_s,
    corpus=corpus,
)
selection, strata, result = select(candidates, spec)
log.info("CBC log:\n%s", result.solver_log)
log.info("solver status: %s; objective (sum of |stratum size - balanced target|): %g", result.status, result.objective)
write_table(
    selection,
    snakemake.output.selection,
    metadata={
        "corpus": corpus,
        "budget": dict(p.budget),
        "min_easy_per_digit_train": p.min_easy_per_digit_train,
        "region_weights": dict(p.region_weights),
        "min_per_region_split": dict(p.min_per_region_split),
        "seed": p.seed,
        "solver_status": result.status,
        "objective": result.objective,
    },
)
write_csv(strata, snakemake.output.strata_csv)
write_text(strata_markdown(strata, corpus), snakemake.output.strata_md)
