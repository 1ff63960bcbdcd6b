"""softdigits: human versus model uncertainty in soft-label learning on digits.

All of the pipeline's logic lives here, one package per stage of the workflow, named as
its rule file (`rules/<stage>.smk`) and its test folder (`tests/<stage>/`):

- `corpora`: downloads and the readers of each raw corpus, into the images contract.
- `dedup`: exact (and optional near) duplicates within and across corpora, the leakage report.
- `generator`: Ambiguous-MNIST regenerated offline (the DDU recipe).
- `cartography`: training dynamics, data maps and difficulty regions.
- `selection`: the budgeted, stratified study subsets; Table 5's corpus-size runs.
- `annotation`: the campaign export, answers (simulated panel, campaign, released),
  QC and aggregation into soft labels, the study table's rows, Table 1.
- `training`: models, label-regime targets and the training loop of the grid.
- `evaluation`: metrics, dynamics, statistics, the paper's tables, figures and findings.

Shared by several stages: `constants`, `io` (atomic writes, the images contract),
`study_table` (the contract training and evaluation read), `allocation`, `config`,
`provenance`, `jobs` (script plumbing) and `cli`. The Snakemake rules only call the
package through thin scripts in `scripts/`.
"""

__version__ = "0.1.0"
