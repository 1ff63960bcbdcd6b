"""The corpora stage: raw digit corpora into the images contract (`softdigits.io.IMAGES_SCHEMA`).

- `download`: checksum-verified downloads (trust-on-first-use where no checksum is published).
- `sources`: one reader per format (MNIST IDX / package copy, the DDU release, ARDIS, Weiss).
"""
