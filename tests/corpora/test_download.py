"""Checksum-verified downloads against an HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest
from http_fixture import GOOD, GOOD_MD5, GOOD_SHA256

from softdigits.corpora.download import (
    ChecksumError,
    DownloadError,
    content_check,
    download,
    download_plan,
    parse_checksum,
    url_filename,
)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("checksum", [GOOD_MD5, GOOD_SHA256])
def test_good_file_is_downloaded_and_verified(server, tmp_path, checksum):
    url, _ = server
    dest = tmp_path / "dl" / "good.bin"
    sha = download(f"{url}/good.bin", dest, checksum, timeout=5)
    assert dest.read_bytes() == GOOD
    assert sha == hashlib.sha256(GOOD).hexdigest()
    assert leftovers(dest.parent) == ["good.bin"]


def test_corrupted_file_fails_with_both_sums_and_leaves_nothing(server, tmp_path):
    url, _ = server
    dest = tmp_path / "dl" / "corrupt.bin"
    with pytest.raises(ChecksumError) as err:
        download(f"{url}/corrupt.bin", dest, GOOD_MD5, timeout=5)
    got = hashlib.md5(GOOD[:-1] + b"?").hexdigest()
    assert f"download of {url}/corrupt.bin: md5 is {got}, expected {GOOD_MD5[4:]}" in str(err.value)
    assert leftovers(dest.parent) == []


def test_failed_download_keeps_an_existing_file_untouched(server, tmp_path):
    url, _ = server
    dest = tmp_path / "corrupt.bin"
    dest.write_bytes(b"old")
    with pytest.raises(ChecksumError):
        download(f"{url}/corrupt.bin", dest, GOOD_MD5, timeout=5)
    assert leftovers(tmp_path) == ["corrupt.bin"] and dest.read_bytes() == b"old"


def test_404_is_a_clear_error_and_leaves_nothing(server, tmp_path):
    url, _ = server
    with pytest.raises(DownloadError, match=rf"download of {url}/missing\.bin failed: HTTP 404"):
        download(f"{url}/missing.bin", tmp_path / "missing.bin", GOOD_MD5, timeout=5)
    assert leftovers(tmp_path) == []


def test_connection_refused_is_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=r"failed: cannot connect"):
        download(f"http://127.0.0.1:{port}/x.bin", tmp_path / "x.bin", GOOD_MD5, timeout=5)
    assert leftovers(tmp_path) == []


def test_malformed_checksum_fails_before_any_download(tmp_path):
    with pytest.raises(ValueError, match=r"bad checksum 'md5:xyz'"):
        download("http://127.0.0.1:9/never", tmp_path / "x", "md5:xyz")
    with pytest.raises(ValueError, match=r"bad checksum 'crc32:abcd'"):
        parse_checksum("crc32:abcd")
    assert parse_checksum("md5:" + "A" * 32) == ("md5", "a" * 32)


def test_unpinned_file_is_locked_on_first_download_and_verified_after(server, tmp_path):
    url, files = server
    dest, lock = tmp_path / "dl" / "good.bin", tmp_path / "locks" / "good.bin.sha256"
    download(f"{url}/good.bin", dest, None, lock=lock, timeout=5)
    assert lock.read_text() == f"{GOOD_SHA256} {url}/good.bin\n"

    dest.unlink()
    download(f"{url}/good.bin", dest, None, lock=lock, timeout=5)  # same content: fine
    assert dest.read_bytes() == GOOD

    files["/good.bin"] = b"changed upstream"
    dest.unlink()
    with pytest.raises(ChecksumError, match=rf"sha256 is [0-9a-f]{{64}}, expected {GOOD_SHA256[7:]}"):
        download(f"{url}/good.bin", dest, None, lock=lock, timeout=5)
    assert not dest.exists()
    assert lock.read_text() == f"{GOOD_SHA256} {url}/good.bin\n"  # the pin is not moved


def test_lock_for_another_url_is_not_silently_reused(server, tmp_path):
    url, _ = server
    lock = tmp_path / "good.bin.sha256"
    lock.write_text(f"{GOOD_SHA256} https://example.org/good.bin\n")
    with pytest.raises(DownloadError, match=r"pins the file from https://example\.org/good\.bin"):
        download(f"{url}/good.bin", tmp_path / "good.bin", None, lock=lock, timeout=5)


def test_unpinned_download_needs_a_lock(tmp_path):
    with pytest.raises(ValueError, match="no checksum given and no lock file"):
        download("http://127.0.0.1:9/x", tmp_path / "x", None)


def test_file_urls_work_for_local_mirrors(tmp_path):
    src = tmp_path / "mirror" / "good.bin"
    src.parent.mkdir()
    src.write_bytes(GOOD)
    download(src.as_uri(), tmp_path / "good.bin", GOOD_MD5)
    assert (tmp_path / "good.bin").read_bytes() == GOOD


def test_url_filename_and_download_plan():
    assert url_filename("https://h/x/train-images-idx3-ubyte.gz?raw=1") == "train-images-idx3-ubyte.gz"
    with pytest.raises(ValueError, match="cannot derive a plain file name"):
        url_filename("https://h/x/")
    corpora = {
        "mnist": {"origin": "package"},
        "ardis": {"origin": "download", "files": {"archive": {"url": "https://h/A.rar", "checksum": None}}},
    }
    assert download_plan(corpora, "dl") == {"ardis": {"archive": "dl/ardis/A.rar"}}
    corpora["ardis"]["files"]["copy"] = {"url": "https://other/A.rar", "checksum": None}
    with pytest.raises(ValueError, match=r"corpora\.ardis\.files: two URLs end in the same file name"):
        download_plan(corpora, "dl")


def test_content_check_names_the_corpus_file_of_each_download():
    plan = {"ardis": {"archive": "dl/ardis/A.rar"}, "mnist": {"train_images": "dl/mnist/t.gz"}}
    assert content_check(plan, "dl/ardis/A.rar") == {"corpus": "ardis", "file_key": "archive"}
    assert content_check(plan, "dl/mnist/t.gz") == {"corpus": "mnist", "file_key": "train_images"}
    assert content_check(plan, "dl/soft_digits/s.parquet") == {}  # the released table: no corpus
