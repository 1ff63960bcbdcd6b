"""Constants shared by several stages, defined once."""

SIDE = 28  # images are SIDE x SIDE grey levels
N_PIXELS = SIDE * SIDE
N_DIGITS = 10
DIGITS = tuple(range(N_DIGITS))
NOT_A_DIGIT = 10  # the eleventh answer class, "not a digit" (the paper's NaN)
N_HUMAN_CLASSES = N_DIGITS + 1

SOURCE_SPLITS = ("train", "test")  # the splits a raw corpus ships with
STUDY_SPLITS = ("train", "val", "test")  # the splits of a study subset

RESPONSES = ("no", "unsure", "yes")  # an annotator's answer to "is this a <digit>?"
REGIONS = ("easy", "ambiguous", "hard", "other")  # data-map regions (cartography)
STRATA = ("all", "HLV", "NoHLV")  # human-agreement strata of the evaluation
NOT_A_DIGIT_MODES = ("renormalise", "exclude")  # what a target does with not-a-digit mass
