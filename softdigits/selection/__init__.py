"""The selection stage: the study subsets and the corpus-size analysis.

- `solve`: the budgeted, stratified selection and train/val/test split (an integer program).
- `corpus_size`: Table 5, LeNet on k MNIST images per digit.
"""
