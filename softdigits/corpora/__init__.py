"""The corpora stage: raw digit corpora into the images contract (`softdigits.io.IMAGES_SCHEMA`).

- `download`: checksum-verified downloads (trust-on-first-use where no checksum is published).
- `sources`: one reader per format (MNIST IDX / package copy, the DDU release, ARDIS, Weiss).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Corpus:
    display: str  # its name in tables and figures


CORPORA = {
    "mnist": Corpus("MNIST"),
    "mukhoti": Corpus("Mukhoti"),  # Ambiguous-MNIST (Mukhoti et al.), downloaded or regenerated
    "ardis": Corpus("ARDIS"),
    "weiss": Corpus("Weiss"),
}


def corpus_name(name: str) -> str:
    """A corpus's display name (the name itself for one the registry does not hold)."""
    return CORPORA[name].display if name in CORPORA else name
