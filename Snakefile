# softdigits: from raw digit corpora to the paper's tables and figures.
# The stages live in rules/*.smk; all logic lives in the softdigits package.


from snakemake.utils import min_version


min_version("9.0")


configfile: "workflow_config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"


wildcard_constraints:
    corpus="[a-z_]+",
    model="[a-z_]+",
    target="[a-z_]+",


# With `replicates` set, the study runs once per replicate as a module of this same workflow.
if REPLICATES:

    include: "rules/replicates.smk"

else:

    include: "rules/corpora.smk"
    include: "rules/dedup.smk"
    include: "rules/generator.smk"
    include: "rules/cartography.smk"
    include: "rules/selection.smk"
    include: "rules/annotation.smk"
    include: "rules/training.smk"
    include: "rules/evaluation.smk"
    include: "rules/explorer.smk"


rule all:
    default_target: True
    input:
        all_targets(),
