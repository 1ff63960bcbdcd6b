"""Successive-epoch JSD, model data maps and Spearman tests of one (corpus, model)."""

from softdigits.jobs import start

log = start(snakemake)

from softdigits.evaluation.dynamics import evaluate_dynamics  # noqa: E402
from softdigits.io import write_table  # noqa: E402
from softdigits.study_table import labels_origin  # noqa: E402

params = snakemake.params
runs = {(t, int(s)): path for (t, s), path in zip(params.runs, snakemake.input.dynamics)}
jsd, maps, spearman, moments = evaluate_dynamics(
    snakemake.input.study,
    runs,
    last_epochs=params.last_epochs,
    n_permutations=params.permutations,
    seed=params.seed,
    gold=params.gold,
    not_a_digit=params.not_a_digit,
    target_params=params.target_params,
)
keys = {"corpus": snakemake.wildcards.corpus, "model": snakemake.wildcards.model}
meta = {"labels_origin": labels_origin(snakemake.input.study), "data_map_gold": params.gold}
write_table(jsd.assign(**keys), snakemake.output.jsd, metadata=meta)
write_table(maps.assign(**keys), snakemake.output.data_map, metadata=meta)
write_table(spearman.assign(**keys), snakemake.output.spearman, metadata=meta)
write_table(moments.assign(**keys), snakemake.output.data_map_seeds, metadata=meta)
log.info("%d data-map points, %d Spearman tests", len(maps), len(spearman))
