# Stage 'selection': rules land with its issue.


def selection_targets():
    return []
