# Stage 'generator': rules land with its issue.


def generator_targets():
    return []
