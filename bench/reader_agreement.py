"""How often readers of MNIST agree with the original labels of the study's images.

The paper's annotators agreed with the original labels on 96.6% of its MNIST study
images and on 66.8% of its Ambiguous-MNIST ones (Table 1). A simulated panel that
reads the image can be no further from the labelling ensemble than readers of the image
are, so this prints, for several readers trained on MNIST (none of them a model the study
trains, none the generator's labelling ensemble), their accuracy on MNIST's test split and
how often their reading of each study image equals its original label, overall and, for a
generated corpus, on its images whose label entropy is at least 0.5 nats. For a generated
corpus it also reads every de-duplicated image, and its most ambiguous ones (by label
entropy), as many as the study holds: what a study made of them would give. The
simulated panel's own agreement (the study table's `soft_label_argmax`) is printed
beside them.

    .venv/bin/python bench/reader_agreement.py [--results results]

It needs `results/` of a default run up to the study tables (and the generator's VAE).
Readers learn from MNIST's training images minus every study image, so no image is read
by a reader that saw it. Not a speed benchmark; nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from softdigits import io  # noqa: E402
from softdigits.annotation.simulation import knn_class_distribution, pooled  # noqa: E402
from softdigits.evaluation.metrics import entropy  # noqa: E402
from softdigits.generator.vae import load_vae  # noqa: E402

HIGH_ENTROPY = 0.5  # nats: the generated images whose label distribution is far from one-hot


def read_labelled(path: Path, columns: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """`columns` and the label entropy of each image of an images table, and its pixels."""
    table = pq.read_table(path, columns=[*columns, "label_dist", "pixels"])
    meta = table.drop(["pixels"]).to_pandas()
    meta["entropy"] = entropy(np.stack(meta["label_dist"].to_numpy()))
    return meta.drop(columns="label_dist"), io.pixels_array(table)


def study_cells(corpus: str, study: pd.DataFrame, reading: np.ndarray) -> dict:
    """Agreement % of `reading` with a study's original labels; for a generated corpus
    (label entropy above 0 somewhere) also on its images of at least HIGH_ENTROPY nats."""
    agree = reading == study["label"].to_numpy()
    cells = {f"{corpus} %": 100 * agree.mean()}
    if study["entropy"].max() > 0:
        cells[f"{corpus} H>={HIGH_ENTROPY} %"] = 100 * agree[study["entropy"].to_numpy() >= HIGH_ENTROPY].mean()
    return cells


def fit(make_model, x: torch.Tensor, y: torch.Tensor, epochs: int) -> torch.nn.Module:
    """Adam, batch 128, cross-entropy: the plain way a reader of MNIST is trained. Seeded
    before `make_model()` builds the model, so that its initial weights are too."""
    torch.manual_seed(0)
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 128):
            batch = order[start : start + 128]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def readers(train_pixels: np.ndarray, train_labels: np.ndarray, vae, panel: dict) -> dict:
    """name -> a function from (n, 784) uint8 pixels to (n,) read classes. `panel` is the
    config's `annotation.simulation`: one reader is the panel's own k-NN, without its prior."""

    def knn(k: int, pool: int, tau: float = 0.0):
        ref = pooled(train_pixels, pool)
        return lambda px: knn_class_distribution(pooled(px, pool), ref, train_labels, k, tau=tau).argmax(axis=1)

    latents = vae.encode_means(train_pixels).numpy()
    x = torch.tensor(train_pixels / 255.0, dtype=torch.float32)
    y = torch.tensor(train_labels)
    logistic = fit(lambda: torch.nn.Linear(784, 10), x, y, epochs=5)
    mlp = fit(
        lambda: torch.nn.Sequential(torch.nn.Linear(784, 1000), torch.nn.ReLU(), torch.nn.Linear(1000, 10)), x, y, 4
    )

    def net(model):
        @torch.no_grad()
        def read(px):
            return model(torch.tensor(px / 255.0, dtype=torch.float32)).argmax(dim=1).numpy()

        return read

    return {
        "1-NN, pixels": knn(1, 1),
        "10-NN, pixels": knn(10, 1),
        "400-NN, 7x7 view, uniform votes": knn(400, 4),
        "the panel's k-NN (config), no prior": knn(
            int(panel["knn_k"]), int(panel["knn_pool"]), float(panel["knn_tau"])
        ),
        "10-NN, VAE latent means": lambda px: knn_class_distribution(
            vae.encode_means(px).numpy(), latents, train_labels, 10
        ).argmax(axis=1),
        "logistic regression": net(logistic),
        "MLP 784-1000-10": net(mlp),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", help="results folder of a default run")
    parser.add_argument("--corpus", nargs="+", default=["mnist", "mukhoti"])
    parser.add_argument("--config", default=str(REPO / "workflow_config.yaml"))
    args = parser.parse_args()
    panel = yaml.safe_load(Path(args.config).read_text())["annotation"]["simulation"]
    results = Path(args.results)
    torch.set_num_threads(1)

    mnist = io.read_images(results / "dedup/mnist.parquet")
    meta = mnist.select(["image_id", "source_split", "label"]).to_pandas()
    pixels = io.pixels_array(mnist)
    studies = {
        c: read_labelled(results / f"study/{c}.parquet", ["image_id", "label", "soft_label_argmax"])
        for c in args.corpus
    }
    in_study = meta["image_id"].isin(pd.concat([s[0]["image_id"] for s in studies.values()]))
    train = ((meta["source_split"] == "train") & ~in_study).to_numpy()
    test = (meta["source_split"] == "test").to_numpy() & ~in_study.to_numpy()
    labels = meta["label"].to_numpy()
    paper = pd.read_csv(REPO / "resources/annotation/paper_table1.csv").set_index("corpus")

    # every de-duplicated image of a generated corpus, read once per reader
    generated = {
        c: read_labelled(results / f"dedup/{c}.parquet", ["label"])
        for c, (study, _) in studies.items()
        if study["entropy"].max() > 0
    }

    rows = []
    for name, read in readers(pixels[train], labels[train], load_vae(results / "generator/vae.pt"), panel).items():
        row = {"reader": name, "MNIST test acc %": 100 * np.mean(read(pixels[test]) == labels[test])}
        for corpus, (study, study_pixels) in studies.items():
            row.update(study_cells(corpus, study, read(study_pixels)))
            if corpus in generated:
                whole, whole_pixels = generated[corpus]
                agree = read(whole_pixels) == whole["label"].to_numpy()
                row[f"{corpus} corpus %"] = 100 * agree.mean()
                most_ambiguous = np.argsort(-whole["entropy"].to_numpy(), kind="stable")[: len(study)]
                row[f"{corpus} corpus top-{len(study)} H %"] = 100 * agree[most_ambiguous].mean()
        rows.append(row)
        print(f"read by {name}", flush=True)
    panel_row = {"reader": "SIMULATED panel (this run)"}
    for corpus, (study, _) in studies.items():
        panel_row.update(study_cells(corpus, study, study["soft_label_argmax"].to_numpy()))
    paper_row = {"reader": "paper's annotators (Table 1)"}
    paper_row.update({f"{c} %": paper.loc[c, "orig_label_agreement_pct"] for c in studies})
    rows += [panel_row, paper_row]
    n_high = {c: int((s[0]["entropy"] >= HIGH_ENTROPY).sum()) for c, s in studies.items()}
    print(f"\nAgreement with the original label of each study image (images with H >= {HIGH_ENTROPY}: {n_high})")
    print(pd.DataFrame(rows).set_index("reader").round(1).to_string())


if __name__ == "__main__":
    main()
