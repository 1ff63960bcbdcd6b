"""Rule train_run: one (corpus, model, target) of the grid, every seed, both regimes."""

from softdigits import jobs, run_outputs, train_run

log = jobs.start(snakemake)
wc = snakemake.wildcards
seeds = snakemake.params.seeds  # every output list is in this order (rules/common.smk: every_seed)
manifests = train_run.run(
    study_path=snakemake.input.study,
    outputs={seed: {name: snakemake.output[name][i] for name in run_outputs.OUTPUTS} for i, seed in enumerate(seeds)},
    model=wc.model,
    target=wc.target,
    config=dict(snakemake.params.settings),
    threads=snakemake.threads,
    code_files=list(snakemake.input.code),
)
for manifest in manifests:
    for regime, run in manifest["regimes"].items():
        log.info(
            "seed %d, %s: %d epochs, best %d, %.1f s",
            manifest["seed"],
            regime,
            run["epochs_trained"],
            run["best_epoch"],
            run["wall_time_s"],
        )
