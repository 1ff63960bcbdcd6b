"""softdigits: human versus model uncertainty in soft-label learning on digits.

All of the pipeline's logic lives here, one module per stage; the Snakemake
rules only call it through thin scripts in `scripts/`.
"""

__version__ = "0.1.0"
