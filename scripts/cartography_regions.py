"""Cartography, step 2: the data map (confidence, variability, correctness, region) per image."""

from softdigits.jobs import start

log = start(snakemake)

from softdigits.cartography.maps import (  # noqa: E402
    Thresholds,
    check_region_shares,
    data_map,
    data_map_table,
    region_counts,
    region_shares,
)
from softdigits.cartography.train import read_dynamics  # noqa: E402
from softdigits.io import read_metadata, write_csv, write_table  # noqa: E402

thresholds = Thresholds(**snakemake.params.thresholds)
dynamics = read_dynamics(snakemake.input.dynamics)
df = data_map(dynamics, thresholds, where=f"{snakemake.input.dynamics}: ")
counts = region_counts(df)
log.info("images per digit and region:\n%s", counts.to_string())
shares = region_shares(df)
log.info("share of the corpus per region: %s", {r: round(v, 4) for r, v in shares.items()})
# The acceptance check: the counts above stay in the log, no data map is written.
check_region_shares(shares, dict(snakemake.params.min_share), where=f"{snakemake.input.dynamics}: ")
meta = read_metadata(snakemake.input.dynamics)
meta.update(thresholds=dict(snakemake.params.thresholds), variability="population std (ddof=0)")
write_table(data_map_table(df), snakemake.output.data_map, metadata=meta)
write_csv(counts.reset_index(), snakemake.output.regions)
