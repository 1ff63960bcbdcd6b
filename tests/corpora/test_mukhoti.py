"""Ambiguous-MNIST's reader: the DDU release tensors and the generator stage's table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from corpus_fixture import write_mukhoti_release

from softdigits import io
from softdigits.corpora import mukhoti
from softdigits.corpora.base import SourceFormatError


def test_mukhoti_release_reader(tmp_path):
    import torch

    paths = write_mukhoti_release(tmp_path)
    table = mukhoti.mukhoti_from_release(**paths)
    samples = torch.load(paths["samples"]).numpy()
    probs = torch.load(paths["predictions"]).numpy()
    assert table.column("image_id").to_pylist()[:5] == [
        "mukhoti:train:0",
        "mukhoti:train:1",
        "mukhoti:train:2",
        "mukhoti:train:3",
        "mukhoti:test:0",
    ]
    assert np.array_equal(io.pixels_array(table), np.rint(samples.reshape(8, 784).astype(np.float64) * 255))
    np.testing.assert_allclose(io.vectors_array(table, "label_dist"), probs, atol=1e-6)
    assert table.column("label").to_pylist() == probs.argmax(axis=1).tolist()
    assert io.vectors_array(table, "sampled_labels").tolist() == torch.load(paths["labels"]).tolist()


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"samples": "rand(8, 3, 28, 28)"}, r"amnist_samples\.pt: shape \(8, 3, 28, 28\), expected \(n, 1, 28, 28\)"),
        (
            {
                "samples": "rand(7, 1, 28, 28)",
                "labels": "zeros(7, 10, dtype=torch.int64)",
                "predictions": "full((7, 10), 0.1)",
            },
            r"amnist_samples\.pt: 7 images; expected an even",
        ),
        ({"samples": "rand(8, 1, 28, 28) * 2"}, r"amnist_samples\.pt: pixel values outside \[0, 1\]"),
        ({"labels": "zeros(8, 9, dtype=torch.int64)"}, r"amnist_labels\.pt: shape \(8, 9\)"),
        ({"labels": "full((8, 10), 10)"}, r"amnist_labels\.pt: sampled labels outside 0-9"),
        ({"predictions": "rand(8, 10)"}, r"amnist_predictions\.pt: row \d+ is not a probability distribution"),
        ({"predictions": "full((8, 11), 1 / 11)"}, r"amnist_predictions\.pt: shape \(8, 11\), expected \(8, 10\)"),
    ],
)
def test_malformed_mukhoti_release_is_named(tmp_path, change, problem):
    import torch

    tensors = {name: eval(f"torch.{expr}", {"torch": torch}) for name, expr in change.items()}
    paths = write_mukhoti_release(tmp_path, **tensors)
    with pytest.raises(SourceFormatError, match=problem):
        mukhoti.mukhoti_from_release(**paths)


def test_mukhoti_file_that_is_no_tensor_is_named(tmp_path):
    paths = write_mukhoti_release(tmp_path)
    paths["labels"].write_bytes(b"not a torch file")
    with pytest.raises(SourceFormatError, match=r"amnist_labels\.pt: not a readable torch tensor file"):
        mukhoti.mukhoti_from_release(**paths)


def test_mukhoti_generator_table_is_checked(tmp_path):
    good = mukhoti.mukhoti_from_release(**write_mukhoti_release(tmp_path))
    io.write_table(good, tmp_path / "ok.parquet")
    assert mukhoti.mukhoti_from_generator(tmp_path / "ok.parquet").equals(good)

    wrong_ids = good.set_column(0, "image_id", pa.array([f"mukhoti:train:{i + 100}" for i in range(8)]))
    io.write_table(wrong_ids, tmp_path / "ids.parquet")
    with pytest.raises(
        SourceFormatError, match=r"ids\.parquet: row 0: image_id 'mukhoti:train:100', expected 'mukhoti:train:0'"
    ):
        mukhoti.mukhoti_from_generator(tmp_path / "ids.parquet")

    other = good.set_column(1, "source", pa.array(["mnist"] * 8))
    io.write_table(other, tmp_path / "src.parquet")
    with pytest.raises(SourceFormatError, match=r"src\.parquet: source must be 'mukhoti'"):
        mukhoti.mukhoti_from_generator(tmp_path / "src.parquet")


# ------------------------------------------------------------- the registry's API


def test_read_takes_the_generated_table_or_the_release(tmp_path):
    release = write_mukhoti_release(tmp_path)
    table, metadata = mukhoti.read(release, "download")
    assert table.equals(mukhoti.mukhoti_from_release(**release)) and metadata == {}
    io.write_table(table, tmp_path / "generated.parquet", metadata={"vae": {"epochs": 3}})
    generated, metadata = mukhoti.read({"generated": str(tmp_path / "generated.parquet")}, "generate")
    assert generated.equals(table) and metadata == {"generator": {"vae": {"epochs": 3}}}


def test_check_tests_every_member_of_the_torch_file(tmp_path):
    path = write_mukhoti_release(tmp_path)["samples"]
    mukhoti.check(path, "amnist_samples.pt", "samples")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a member
    path.write_bytes(bytes(data))
    with pytest.raises(
        SourceFormatError, match=r"amnist_samples\.pt: (member .* is damaged|not a complete torch file)"
    ):
        mukhoti.check(path, "amnist_samples.pt", "samples")
    path.write_bytes(b"not a zip")
    with pytest.raises(SourceFormatError, match=r"amnist_samples\.pt: not a complete torch file"):
        mukhoti.check(path, "amnist_samples.pt", "samples")
