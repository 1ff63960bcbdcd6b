"""Rule train_run: one (corpus, model, target) of the grid, every seed, both regimes."""

from pathlib import Path

from softdigits import jobs
from softdigits.training import run_outputs, train_run

log = jobs.start(snakemake)
wc = snakemake.wildcards
# Each seed from its cell's folder (.../seed<N>/<file>): no list order to keep in step,
# and no seed list among the params, so reordering or removing seeds reruns nothing.
outputs = {}
for name in run_outputs.OUTPUTS:
    for path in snakemake.output[name]:
        seed = int(Path(path).parent.name.removeprefix("seed"))
        outputs.setdefault(seed, {})[name] = path
manifests = train_run.run(
    study_path=snakemake.input.study,
    outputs=outputs,
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
