"""The evaluation stage: what the trained runs say, against the paper.

- `metrics`: the metric functions (accuracy, KL, Brier, ECE, JSD, entropy).
- `runs`: rule evaluate_runs, every metric of every run per evaluation set and stratum,
  with the post-hoc views (`temperature`, `selective`).
- `dynamics`: rule evaluate_dynamics, JSD, model data maps and Spearman tests.
- `stats`: rule evaluate_summary, seed summaries and paired tests with Holm correction.
- `tables`: rule table_results, the paper's tables and those beyond it.
- `findings`: rule findings, each claim of the paper checked against the run.
- `plots`: the evaluation figures.
"""
