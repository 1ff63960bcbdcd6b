# Stage 'annotation': rules land with its issue.


def annotation_targets():
    return []
