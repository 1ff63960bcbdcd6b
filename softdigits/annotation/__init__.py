"""The annotation stage, one module per concept.

- `campaign`: the campaign's design (task lists with gold attention checks) and its export (PNGs, CSVs).
- `answers`: the raw-annotations contract (`RAW_SCHEMA`, `raw_table`) and the import and validation of answers.
- `released`: the released soft-digits table, checked and read in the study table's columns.
- `study`: the study table built from selection, images and labels (its contract: `softdigits.study_table`).
"""
