# Stage 'dedup': rules land with its issue.


def dedup_targets():
    return []
