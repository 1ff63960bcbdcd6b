"""Constants shared by several stages, defined once."""

SIDE = 28  # images are SIDE x SIDE grey levels
N_PIXELS = SIDE * SIDE
N_DIGITS = 10
DIGITS = tuple(range(N_DIGITS))
NOT_A_DIGIT = 10  # the eleventh answer class, "not a digit" (the paper's NaN)
N_HUMAN_CLASSES = N_DIGITS + 1

SOURCE_SPLITS = ("train", "test")  # the splits a raw corpus ships with
# Images per source split of the published releases (Weiss's CSV: not fixed; a generated
# Ambiguous-MNIST: generator.stratify.n_images, half per split). The config check bounds
# a selection budget by them.
RELEASE_SPLIT_SIZES = {
    "mnist": {"train": 60_000, "test": 10_000},
    "mukhoti": {"train": 6_000, "test": 6_000},
    "ardis": {"train": 6_600, "test": 1_000},
}
STUDY_SPLITS = ("train", "val", "test")  # the splits of a study subset

RESPONSES = ("no", "unsure", "yes")  # an annotator's answer to "is this a <digit>?"
REGIONS = ("easy", "ambiguous", "hard", "other")  # data-map regions (cartography)
STRATA = ("all", "HLV", "NoHLV")  # human-agreement strata of the evaluation
NOT_A_DIGIT_MODES = ("renormalise", "exclude")  # what a target does with not-a-digit mass
