"""Hash de-duplication and the leakage report, on small tables and on the real MNIST."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from softdigits import io
from softdigits.corpora.mnist import mnist_from_package
from softdigits.dedup import duplicates as dedup
from softdigits.dedup.duplicates import NearDuplicates

REPO = Path(__file__).resolve().parents[2]
PRIORITY = ["mnist", "mukhoti", "ardis", "weiss"]
PAPER_COUNTS = REPO / "resources/dedup/paper_duplicates.csv"


def image(value: int, *changes: tuple[int, int]) -> np.ndarray:
    """A 784-pixel image: a plain stripe pattern `value`, with (pixel, new value) changes."""
    pixels = np.zeros(784, dtype=np.uint8)
    pixels[(value * 37) % 700 : (value * 37) % 700 + 60] = 200
    pixels[value % 28 :: 28] = 90  # a column per value keeps the pooled keys apart
    for index, new in changes:
        pixels[index] = new
    return pixels


def corpus(name: str, rows: list[tuple[str, int, np.ndarray]]):
    """An images table from (split, source_index, pixels) rows; label = index % 10."""
    return io.images_table(
        source=name,
        source_split=[r[0] for r in rows],
        source_index=np.array([r[1] for r in rows]),
        pixels=np.stack([r[2] for r in rows]),
        label=np.array([r[1] % 10 for r in rows]),
    )


@pytest.fixture
def tables():
    return {
        # test:1 leaks train:0; train:3 copies train:2; test:0 is unique.
        "ardis": corpus(
            "ardis",
            [
                ("test", 1, image(1)),
                ("train", 0, image(1)),
                ("train", 2, image(2)),
                ("train", 3, image(2)),
                ("test", 0, image(3)),
            ],
        ),
        # train:5 also occurs in ardis; train:6 occurs in ardis (as test:0).
        "mnist": corpus("mnist", [("train", 5, image(2)), ("train", 6, image(3)), ("test", 0, image(4))]),
    }


def test_exact_duplicates_keep_the_first_by_corpus_split_and_index(tables):
    result = dedup.deduplicate(tables, PRIORITY)
    dup = result.duplicates.set_index("dropped_image_id")
    assert dup["kept_image_id"].to_dict() == {
        "ardis:test:1": "ardis:train:0",
        "ardis:train:2": "mnist:train:5",
        "ardis:train:3": "mnist:train:5",
        "ardis:test:0": "mnist:train:6",
    }
    assert "ardis:train:0" not in dup.index  # the training copy of a leak is kept
    assert dup["reason"].to_dict() == {
        "ardis:test:1": "within_corpus_exact",
        "ardis:train:2": "cross_corpus_exact",
        "ardis:train:3": "cross_corpus_exact",
        "ardis:test:0": "cross_corpus_exact",
    }
    assert result.kept["ardis"].column("image_id").to_pylist() == ["ardis:train:0"]
    assert result.kept["mnist"].equals(tables["mnist"])
    assert list(result.duplicates.columns) == dedup.DUPLICATE_COLUMNS
    assert (result.duplicates["mean_abs_diff"] == 0).all()


def test_priority_decides_which_corpus_keeps_a_shared_image(tables):
    result = dedup.deduplicate(tables, ["ardis", "mnist"])
    dup = result.duplicates.set_index("dropped_image_id")
    assert dup.loc["mnist:train:5", "kept_image_id"] == "ardis:train:2"
    assert dup.loc["ardis:train:3", "reason"] == "within_corpus_exact"
    assert dup.loc["ardis:test:1", "kept_image_id"] == "ardis:train:0"
    assert result.kept["ardis"].column("image_id").to_pylist() == ["ardis:train:0", "ardis:train:2", "ardis:test:0"]


def test_leakage_counts(tables):
    leak = dedup.deduplicate(tables, PRIORITY).leakage.set_index("corpus")
    assert leak.loc["ardis"].dropna().to_dict() == {  # shared_with_ardis is blank for ardis itself
        "n_images": 5,
        "n_train": 3,
        "n_test": 2,
        "n_distinct": 3,
        "test_in_train": 1,
        "dropped_within_corpus_exact": 1,
        "dropped_cross_corpus_exact": 3,
        "dropped_within_corpus_near": 0,
        "dropped_cross_corpus_near": 0,
        "n_kept": 1,
        "shared_with_mnist": 3,
    }
    assert leak.loc["mnist", "shared_with_ardis"] == 2
    assert leak.loc["mnist", "test_in_train"] == 0 and leak.loc["mnist", "n_kept"] == 3


def test_a_corpus_missing_from_the_priority_is_an_error(tables):
    with pytest.raises(ValueError, match=r"corpora \['ardis'\] are missing from the dedup priority"):
        dedup.deduplicate(tables, ["mnist"])


def test_near_duplicates_only_when_enabled():
    base = image(5)
    t = {
        "weiss": corpus(
            "weiss",
            [
                ("train", 0, base),
                ("train", 1, image(5, (3, 4))),  # 1 pixel off by 4: mean diff 4/784
                ("train", 2, image(5, *[(i, 20) for i in range(0, 28 * 8, 28)])),  # 8 pixels off by 20: 160/784
                ("train", 3, image(9)),
            ],
        )
    }
    assert dedup.deduplicate(t, PRIORITY).duplicates.empty
    near = NearDuplicates(enabled=True, max_mean_abs_diff=0.1)
    result = dedup.deduplicate(t, PRIORITY, near)
    dup = result.duplicates.set_index("dropped_image_id")
    assert list(dup.index) == ["weiss:train:1"]
    assert dup.loc["weiss:train:1", "reason"] == "within_corpus_near"
    assert dup.loc["weiss:train:1", "kept_image_id"] == "weiss:train:0"
    assert dup.loc["weiss:train:1", "mean_abs_diff"] == pytest.approx(4 / 784)
    loose = dedup.deduplicate(t, PRIORITY, NearDuplicates(enabled=True, max_mean_abs_diff=5.0))
    assert set(loose.duplicates["dropped_image_id"]) >= {"weiss:train:1"}
    assert "weiss:train:3" not in set(loose.duplicates["dropped_image_id"])


def test_near_duplicates_across_corpora_come_after_exact_ones(tables):
    tables["weiss"] = corpus("weiss", [("train", 0, image(4, (700, 3)))])  # near mnist:test:0
    result = dedup.deduplicate(tables, PRIORITY, NearDuplicates(enabled=True, max_mean_abs_diff=0.5))
    dup = result.duplicates.set_index("dropped_image_id")
    assert dup.loc["weiss:train:0", "reason"] == "cross_corpus_near"
    assert dup.loc["weiss:train:0", "kept_image_id"] == "mnist:test:0"
    assert result.leakage.set_index("corpus").loc["weiss", "dropped_cross_corpus_near"] == 1


def test_a_stored_hash_that_does_not_match_the_pixels_is_an_error(tables):
    bad = tables["mnist"].set_column(7, "sha256", pa.array(["0" * 64] * 3))
    with pytest.raises(io.DataContractError, match="corpus mnist: sha256 of mnist:train:5 does not match"):
        dedup.deduplicate({"mnist": bad}, PRIORITY)


def test_near_duplicate_settings_are_checked():
    with pytest.raises(ValueError, match="pool 5 does not divide 28"):
        NearDuplicates(pool=5)


def test_run_writes_every_output_deterministically(tables, tmp_path):
    inputs = {}
    for name, table in tables.items():
        inputs[name] = tmp_path / f"in_{name}.parquet"
        io.write_table(table, inputs[name], metadata={"corpus": name})

    def run(folder: Path):
        folder.mkdir()
        out = {name: folder / f"{name}.parquet" for name in tables}
        for name in tables:
            dedup.run_corpus(name, inputs, out[name], PRIORITY, NearDuplicates())
        dedup.run_report(
            inputs,
            folder / "duplicates.parquet",
            folder / "duplicates.csv",
            folder / "leakage.csv",
            folder / "leakage.md",
            PRIORITY,
            NearDuplicates(),
            vs_paper_csv=folder / "vs_paper.csv",
            paper_counts=PAPER_COUNTS,
            origins={"ardis": "download", "mnist": "package"},
        )
        return out

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    for name in tables:
        assert io.read_images(first[name]).equals(io.read_images(second[name]))
        meta = io.read_metadata(first[name])
        assert meta["corpus"] == name and meta["dedup"]["n_before"] == tables[name].num_rows
    for f in ("duplicates.csv", "leakage.csv", "leakage.md", "vs_paper.csv"):
        assert (tmp_path / "a" / f).read_text() == (tmp_path / "b" / f).read_text()
    assert len(pd.read_parquet(tmp_path / "a" / "duplicates.parquet")) == 4
    md = (tmp_path / "a" / "leakage.md").read_text()
    assert "| ardis | 5 | 3 | 2 | 3 | 1 |" in md and "4 images dropped in total" in md


@pytest.mark.parametrize("near", [NearDuplicates(), NearDuplicates(enabled=True, max_mean_abs_diff=40.0)])
def test_a_corpus_kept_images_never_depend_on_the_corpora_below_it(tables, tmp_path, near):
    """Per-corpus dedup (each corpus against the ones above it) keeps the same bytes as one
    job over every corpus: what lets MNIST's chain start before the lower corpora exist."""
    inputs = {}
    for name, table in tables.items():
        inputs[name] = tmp_path / f"in_{name}.parquet"
        io.write_table(table, inputs[name])
    everything = dedup.deduplicate(tables, PRIORITY, near)
    order = [c for c in PRIORITY if c in tables]
    for k, name in enumerate(order):
        above = {c: inputs[c] for c in order[: k + 1]}
        kept = dedup.run_corpus(name, above, tmp_path / f"{name}.parquet", PRIORITY, near)
        assert kept.equals(everything.kept[name])
    # and the check can fail: the lowest corpus alone keeps copies of the ones above it
    lowest = order[-1]
    alone = dedup.deduplicate({lowest: tables[lowest]}, PRIORITY, near).kept[lowest]
    assert alone.num_rows > everything.kept[lowest].num_rows


def test_mnist_has_no_duplicates():
    checksums = yaml.safe_load((REPO / "workflow_config.yaml").read_text())["corpora"]["mnist"]["idx_checksums"]
    mnist = mnist_from_package(checksums)
    result = dedup.deduplicate({"mnist": mnist}, PRIORITY)
    assert result.duplicates.empty
    leak = result.leakage.iloc[0]
    assert (leak["n_images"], leak["n_distinct"], leak["test_in_train"], leak["n_kept"]) == (70_000, 70_000, 0, 70_000)


# ------------------------------------------------------------ against the paper


def repeated_corpus(n_images: int, n_copies: int):
    """A 'mukhoti' corpus of n_images rows whose last n_copies rows repeat earlier images."""
    distinct = n_images - n_copies
    values = np.array(list(range(distinct)) + [i % distinct for i in range(n_copies)])
    pixels = np.zeros((n_images, 784), dtype=np.uint8)
    pixels[:, :4] = values[:, None].astype("<u4").view(np.uint8).reshape(-1, 4)  # distinct per value
    half = n_images // 2
    return corpus(
        "mukhoti", [("train" if i < half else "test", i if i < half else i - half, pixels[i]) for i in range(n_images)]
    )


def report_for(table) -> tuple[pd.DataFrame, str]:
    result = dedup.deduplicate({"mukhoti": table}, PRIORITY)
    vs_paper = dedup.against_paper(result.leakage, dedup.read_paper_counts(PAPER_COUNTS), {"mukhoti": "generate"})
    return vs_paper, dedup.leakage_markdown(result.leakage, result.duplicates, PRIORITY, NearDuplicates(), vs_paper)


def test_the_report_sets_the_corpus_count_beside_the_papers_and_can_disagree():
    vs_paper, md = report_for(repeated_corpus(40, 7))
    row = vs_paper.iloc[0]
    assert (row["n_images"], row["n_removed"], row["n_remaining"]) == (40, 7, 33)
    assert (row["paper_n_images"], row["paper_n_removed"], row["paper_n_remaining"]) == (12_000, 1_392, 10_608)
    assert row["agrees"] == "no"
    assert (
        "**mukhoti** (regenerated offline with the DDU recipe (not the release the paper counted)): "
        "7 of 40 removed (17.5%), 33 remaining. The paper: 1,392 of 12,000 (11.6%), 10,608 remaining: "
        "a different count."
    ) in md
    # another corpus, another count: the report follows the data, not the paper
    other, other_md = report_for(repeated_corpus(40, 2))
    assert other.iloc[0]["n_removed"] == 2 and "2 of 40 removed (5.0%)" in other_md


def test_the_report_agrees_only_when_size_and_count_match_the_paper():
    table = repeated_corpus(12_000, 1_392)
    vs_paper, md = report_for(table)
    assert vs_paper.iloc[0]["agrees"] == "yes" and "1,392 of 12,000 removed (11.6%)" in md and "the same count" in md
    # the same count of another size is not agreement
    vs_paper, _ = report_for(repeated_corpus(11_000, 1_392))
    assert vs_paper.iloc[0]["agrees"] == "no"


def test_a_corpus_the_paper_gives_no_count_for_says_so(tmp_path):
    leakage = pd.DataFrame({"corpus": ["weiss"], "n_images": [10], "n_kept": [9]})
    vs_paper = dedup.against_paper(leakage, dedup.read_paper_counts(PAPER_COUNTS), {"weiss": "download"})
    assert vs_paper.iloc[0]["agrees"] == "no paper count" and vs_paper.iloc[0]["n_removed"] == 1
    bad = tmp_path / "paper.csv"
    bad.write_text("corpus,n_images,n_removed,n_remaining,where\nmukhoti,12000,1392,10000,x\n")
    with pytest.raises(ValueError, match=r"paper.csv: row 2 \(mukhoti\): n_images - n_removed != n_remaining"):
        dedup.read_paper_counts(bad)
