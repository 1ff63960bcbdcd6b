"""Successive-epoch JSD, model data maps and Spearman tests of one (corpus, model)."""

from softdigits.jobs import start

log = start(snakemake)

from softdigits.evaluation.dynamics import evaluate_dynamics, shuffled_gold  # noqa: E402
from softdigits.io import write_table  # noqa: E402
from softdigits.study_table import labels_origin  # noqa: E402
from softdigits.study_table import read_study_frame as read_study

runs = {(t, int(s)): path for (t, s), path in zip(snakemake.params.runs, snakemake.input.dynamics)}
trained_gold = {}
if any(t == "human_shuffled" for t, _ in runs):
    trained_gold["human_shuffled"] = shuffled_gold(
        snakemake.input.study, snakemake.params.not_a_digit, snakemake.params.shuffle_seed
    )
jsd, maps, spearman = evaluate_dynamics(
    read_study(snakemake.input.study),
    runs,
    last_epochs=snakemake.params.last_epochs,
    n_permutations=snakemake.params.permutations,
    seed=snakemake.params.seed,
    gold=snakemake.params.gold,
    trained_gold=trained_gold,
)
keys = {"corpus": snakemake.wildcards.corpus, "model": snakemake.wildcards.model}
meta = {"labels_origin": labels_origin(snakemake.input.study), "data_map_gold": snakemake.params.gold}
write_table(jsd.assign(**keys), snakemake.output.jsd, metadata=meta)
write_table(maps.assign(**keys), snakemake.output.data_map, metadata=meta)
write_table(spearman.assign(**keys), snakemake.output.spearman, metadata=meta)
log.info("%d data-map points, %d Spearman tests", len(maps), len(spearman))
