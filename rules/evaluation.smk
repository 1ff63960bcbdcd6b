# Stage 'evaluation': rules land with its issue.


def evaluation_targets():
    return []
