"""Atomic outputs: complete or absent, never half-written; readable by others."""

from __future__ import annotations

import pandas as pd
import pytest

from softdigits import io


def test_atomic_path_leaves_nothing_on_failure_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "table.csv"
    out.write_text("old\n")
    with pytest.raises(RuntimeError):
        with io.atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_written_files_are_0644_and_round_trip(tmp_path):
    out = tmp_path / "t.parquet"
    io.write_table(pd.DataFrame({"a": [1, 2]}), out, metadata={"simulated": True}, compression="zstd")
    assert out.stat().st_mode & 0o777 == 0o644
    assert pd.read_parquet(out)["a"].tolist() == [1, 2]
    assert io.read_metadata(out) == {"simulated": True}


def test_atomic_dir_replaces_the_folder_only_on_success(tmp_path):
    out = tmp_path / "campaign"
    with io.atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (out / "a.txt").read_text() == "1" and out.stat().st_mode & 0o777 == 0o755
    with pytest.raises(RuntimeError):
        with io.atomic_dir(out) as tmp:
            (tmp / "b.txt").write_text("2")
            raise RuntimeError("killed")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["campaign"]
