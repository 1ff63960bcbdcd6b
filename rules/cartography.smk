# Stage 'cartography': rules land with its issue.


def cartography_targets():
    return []
