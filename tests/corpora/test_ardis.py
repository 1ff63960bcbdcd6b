"""ARDIS IV's reader: the RAR archive of text files (stored-entry fixtures made here)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from corpus_fixture import ardis_text, write_ardis_archive, write_stored_rar

from softdigits import io
from softdigits.corpora import ardis
from softdigits.corpora.base import SourceFormatError


def test_stored_rar_fixture_is_read_by_rarfile_without_a_tool(tmp_path):
    import rarfile

    write_stored_rar(tmp_path / "a.rar", {"dir/a.txt": b"hello", "b.txt": b""})
    with rarfile.RarFile(tmp_path / "a.rar") as rf:
        assert rf.read("dir/a.txt") == b"hello" and rf.read("b.txt") == b""


@pytest.mark.parametrize("prefix", ["", "ARDIS_DATASET_IV/"])
def test_ardis_reader(tmp_path, prefix):
    arrays = write_ardis_archive(tmp_path / "ARDIS_DATASET_IV.rar", np.random.default_rng(2), prefix=prefix)
    table = ardis.ardis_from_archive(tmp_path / "ARDIS_DATASET_IV.rar")
    assert table.column("image_id").to_pylist() == [f"ardis:train:{i}" for i in range(4)] + [
        f"ardis:test:{i}" for i in range(3)
    ]
    assert np.array_equal(io.pixels_array(table), np.concatenate([arrays["train"][0], arrays["test"][0]]))
    assert table.column("label").to_pylist() == [*arrays["train"][1], *arrays["test"][1]]


@pytest.mark.parametrize(
    "override, problem",
    [
        (
            {"ARDIS_test_labels.csv": ardis_text(np.eye(10)[[1, 2, 3]] * 2)},
            r"ARDIS_test_labels\.csv: row 1 is not one-hot",
        ),
        (
            {"ARDIS_test_labels.csv": ardis_text(np.eye(10)[[1, 2]])},
            r"ARDIS_test_labels\.csv: shape \(2, 10\), expected \(3, 10\)",
        ),
        (
            {"ARDIS_train_2828.csv": ardis_text(np.full((4, 784), 12.5))},
            r"ARDIS_train_2828\.csv: row 1, pixel 0: '12\.5' is not an integer pixel in 0-255",
        ),
        (
            {"ARDIS_train_2828.csv": ardis_text(np.full((4, 784), 300))},
            r"ARDIS_train_2828\.csv: row 1, pixel 0: '300' is not an integer",
        ),
        (
            {"ARDIS_train_2828.csv": ardis_text(np.zeros((4, 780)))},
            r"ARDIS_train_2828\.csv: 780 values per row, expected 784",
        ),
        ({"ARDIS_train_2828.csv": b"1 2 x\n"}, r"ARDIS_train_2828\.csv: could not convert string 'x'"),
    ],
)
def test_malformed_ardis_is_named(tmp_path, override, problem):
    write_ardis_archive(tmp_path / "a.rar", np.random.default_rng(3), **override)
    with pytest.raises(SourceFormatError, match=r"a\.rar!" + problem):
        ardis.ardis_from_archive(tmp_path / "a.rar")


def test_ardis_missing_member_and_bad_archive_are_named(tmp_path):
    write_stored_rar(tmp_path / "a.rar", {"ARDIS_train_2828.csv": b"0\n"})
    with pytest.raises(SourceFormatError, match=r"a\.rar: archive lacks ARDIS_train_labels\.csv"):
        ardis.ardis_from_archive(tmp_path / "a.rar")
    (tmp_path / "b.rar").write_bytes(b"no archive")
    with pytest.raises(SourceFormatError, match=r"b\.rar: not a readable RAR archive"):
        ardis.ardis_from_archive(tmp_path / "b.rar")


def test_compressed_ardis_without_unrar_tool_names_the_tools(tmp_path, monkeypatch):
    import rarfile

    write_ardis_archive(tmp_path / "a.rar", np.random.default_rng(4))
    data = bytearray((tmp_path / "a.rar").read_bytes())
    # Mark the first entry as compressed (method 0x33) and fix its header CRC.
    start = 7 + 13
    head_size = struct.unpack_from("<H", data, start + 5)[0]
    data[start + 25] = 0x33
    struct.pack_into("<H", data, start, zlib.crc32(bytes(data[start + 2 : start + head_size])) & 0xFFFF)
    (tmp_path / "a.rar").write_bytes(bytes(data))
    for tool in ("UNRAR_TOOL", "UNAR_TOOL", "BSDTAR_TOOL", "SEVENZIP_TOOL", "SEVENZIP2_TOOL"):
        monkeypatch.setattr(rarfile, tool, "softdigits-no-such-tool")
    monkeypatch.setattr(rarfile, "CURRENT_SETUP", None)
    with pytest.raises(SourceFormatError, match=r"a\.rar: ARDIS_train_2828\.csv is compressed.*libarchive-tools"):
        ardis.ardis_from_archive(tmp_path / "a.rar")


# ------------------------------------------------------------- the registry's API


def test_read_and_check_take_the_archive(tmp_path):
    arrays = write_ardis_archive(tmp_path / "A.rar", np.random.default_rng(2))
    table, metadata = ardis.read({"archive": str(tmp_path / "A.rar")}, "download")
    assert np.array_equal(io.pixels_array(table), np.concatenate([arrays["train"][0], arrays["test"][0]]))
    assert metadata == {}
    ardis.check(tmp_path / "A.rar", "A.rar", "archive")
    (tmp_path / "A.rar").write_bytes((tmp_path / "A.rar").read_bytes()[:-500])
    with pytest.raises(SourceFormatError, match=r"A\.rar: "):
        ardis.check(tmp_path / "A.rar", "A.rar", "archive")
