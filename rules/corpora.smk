# Stage 'corpora': rules land with its issue.


def corpora_targets():
    return []
