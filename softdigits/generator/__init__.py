"""Ambiguous-MNIST regenerated offline: the DDU recipe (Mukhoti et al.), one module per step.

Each step is one rule with its output cached on disk; the same config and seed give the
same corpus.

- `inputs`: what the steps read, checked: the MNIST splits, settings from the config,
  checkpoints and the candidate pool's table; `GeneratorError` for a bad one.
- `vae`: step 1, the MLP VAE whose latent space the mixtures are made in.
- `ensemble`: step 2, the LeNet-5 labelling ensemble and its uncertainty scores.
- `pool`: step 3, the candidate pool: mixed, decoded, scored and filtered.
- `select`: step 4, the entropy-stratified corpus, its label draws and generation records.
- `figures`: the corpus's figures (no torch, for the plots env).
"""
