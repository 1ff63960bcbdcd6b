"""Rule train_run: one (corpus, model, target, seed) cell of the grid, both regimes."""

from softdigits import jobs, run_outputs, train_run

log = jobs.start(snakemake)
wc = snakemake.wildcards
manifest = train_run.run(
    study_path=snakemake.input.study,
    outputs={name: snakemake.output[name] for name in run_outputs.OUTPUTS},
    model=wc.model,
    target=wc.target,
    seed=int(wc.seed),
    config=dict(snakemake.params.settings),
    threads=snakemake.threads,
    code_files=list(snakemake.input.code),
)
for regime, run in manifest["regimes"].items():
    log.info("%s: %d epochs, best %d, %.1f s", regime, run["epochs_trained"], run["best_epoch"], run["wall_time_s"])
