"""The dedup stage: exact (and optional near) duplicates within and across corpora.

- `duplicates`: which copy is kept and why, per corpus against the corpora above it in
  priority, and the leakage report beside the paper's counts.
"""
