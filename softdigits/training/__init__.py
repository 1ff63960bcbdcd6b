"""The training stage: the grid {corpus} x {model} x {target} x {seed}, both regimes.

- `models`: the paper's three classifiers.
- `targets`: the training target of every label regime (no torch).
- `loop`: the one small training loop every model in the pipeline uses.
- `stack`: many seeds of one model trained as one stacked network, each as it would be alone.
- `train_run`: rule train_run, one (corpus, model, target) for every seed.
- `run_outputs`: a run's output files, their schemas, writers and readers.
"""
