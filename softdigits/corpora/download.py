"""Checksum-verified downloads.

A file is fetched under a temporary name beside its destination and moved into
place only once its checksum matches, so a failed or corrupted download never
leaves a file behind. Checksums are written `"md5:<hex>"` or `"sha256:<hex>"`.

Some sources publish no checksum (Weiss's CSV, the ARDIS archive). For those the
config holds `null`, and verification falls back to trust-on-first-use: the
first download records its sha256 in a lock file, and every later download of
the same file must match it. Before a first download is pinned its content is
checked (`check`: the archive's integrity and the reader parsing it), so a
truncated or damaged first download is never trusted. The lock is never skipped
silently: recording one is logged as a warning that says how to pin the sum in
the config; a mismatch names the lock file and how to reset it.

Verified files outlive failed reruns: every verified download is also kept in a
content-addressed store (`store/<algorithm>-<hex>`, a hard link when possible),
outside every rule's outputs. When Snakemake reruns a download (its URL or
checksum changed) it deletes the rule's output first; if the new download then
fails, the earlier verified file is still in the store, and a download whose
expected sum is already in the store is served from it without any traffic
(so reverting the config works offline).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from softdigits.errors import KnownError
from softdigits.io import atomic_path, write_text

log = logging.getLogger(__name__)

ALGORITHMS = {"md5": 32, "sha256": 64}  # name -> hex digest length
CHUNK = 1 << 20
TIMEOUT_S = 60
FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


class DownloadError(KnownError, RuntimeError):
    """A download failed: the message names the URL and why."""


class ChecksumError(DownloadError):
    """Content does not match its expected checksum: the message gives both sums."""


def parse_checksum(spec: str) -> tuple[str, str]:
    """Split `"md5:<hex>"` into ("md5", "<hex>"), checking the algorithm and length."""
    algorithm, _, digest = str(spec).partition(":")
    digest = digest.lower()
    if algorithm not in ALGORITHMS or not re.fullmatch(f"[0-9a-f]{{{ALGORITHMS[algorithm]}}}", digest):
        raise ValueError(f"bad checksum {spec!r}: expected 'md5:<32 hex>' or 'sha256:<64 hex>'")
    return algorithm, digest


def digest_bytes(data: bytes, algorithm: str) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def digest_file(path: str | os.PathLike, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_bytes(data: bytes, expected: str, what: str) -> None:
    """Raise ChecksumError naming `what` and both sums when `data` does not match."""
    algorithm, want = parse_checksum(expected)
    got = digest_bytes(data, algorithm)
    if got != want:
        raise ChecksumError(f"{what}: {algorithm} is {got}, expected {want}")


def verify_file(path: str | os.PathLike, expected: str, what: str) -> None:
    algorithm, want = parse_checksum(expected)
    got = digest_file(path, algorithm)
    if got != want:
        raise ChecksumError(f"{what}: {algorithm} is {got}, expected {want}")


def url_filename(url: str) -> str:
    """The file name a URL is saved under (last path segment, query ignored)."""
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    if not FILENAME.fullmatch(name):
        raise ValueError(f"cannot derive a plain file name from URL {url!r} (got {name!r})")
    return name


def download(
    url: str,
    dest: str | os.PathLike,
    checksum: str | None,
    lock: str | os.PathLike | None = None,
    timeout: float = TIMEOUT_S,
    store: str | os.PathLike | None = None,
    check: Callable[[Path, str], None] | None = None,
) -> str:
    """Fetch `url` to `dest`, verified by `checksum` (or by the lock when it is None).

    Returns the file's sha256. With `checksum=None`, `lock` is required: if it
    exists, the file must match the sha256 it records for this URL; if not, the
    content is first checked by `check(path, name)` (which raises on a damaged
    file) and then its sha256 is recorded there. With `store`, a file whose
    expected sum is in the store is taken from it, and every verified download
    is added to it.
    """
    dest = Path(dest)
    if checksum is not None:
        parse_checksum(checksum)  # fail on a malformed sum before any traffic
        expected, pinned_by = checksum, "the config's checksum"
    else:
        if lock is None:
            raise ValueError(f"{url}: no checksum given and no lock file to record one in")
        expected, pinned_by = _read_lock(Path(lock), url), f"the lock file {lock}"

    if expected is not None and store is not None and _from_store(Path(store), expected, dest):
        log.info("%s: taken from the verified store %s (no download)", dest, store)
        return digest_file(dest, "sha256")

    with atomic_path(dest) as tmp:
        _fetch(url, tmp, timeout)
        sha256 = digest_file(tmp, "sha256")
        if expected is not None:
            try:
                verify_file(tmp, expected, f"download of {url}")
            except ChecksumError as err:
                raise ChecksumError(f"{err} (expected by {pinned_by}){_reset_hint(checksum, lock)}") from None
        elif check is not None:
            try:
                check(tmp, dest.name)
            except Exception as err:  # any reader failure means: do not pin this file
                message = str(err).replace(str(tmp), dest.name)
                raise DownloadError(
                    f"download of {url} is damaged, so its checksum was not pinned: {message}"
                ) from None
        if store is not None:
            _add_to_store(Path(store), tmp, expected or f"sha256:{sha256}")
    log.info("downloaded %s -> %s (sha256:%s)", url, dest, sha256)

    if checksum is None and expected is None:
        write_text(f"sha256:{sha256} {url}\n", lock)
        log.warning(
            "%s has no pinned checksum: recorded sha256:%s in %s; later downloads must "
            "match it. Pin it by putting checksum: 'sha256:%s' in the config.",
            url,
            sha256,
            lock,
            sha256,
        )
    return sha256


def _reset_hint(checksum: str | None, lock) -> str:
    """How to change a pin on purpose (only for a trust-on-first-use lock)."""
    if checksum is not None:
        return ""
    return (
        f". If the file changed upstream on purpose, delete {lock} (or put the new "
        "checksum in the config) and rerun: the next download is checked and pinned anew"
    )


def store_path(store: Path, expected: str) -> Path:
    """Where the store keeps the file with checksum `expected` ("md5:<hex>" -> md5-<hex>)."""
    algorithm, digest = parse_checksum(expected)
    return store / f"{algorithm}-{digest}"


def _from_store(store: Path, expected: str, dest: Path) -> bool:
    """Put the stored copy of `expected` at `dest` (verified again); False when absent."""
    kept = store_path(store, expected)
    if not kept.is_file():
        return False
    try:
        verify_file(kept, expected, str(kept))
    except ChecksumError as err:  # the store was tampered with: ignore it, fetch anew
        log.warning("%s; ignoring the stored copy", err)
        return False
    with atomic_path(dest) as tmp:
        _link_or_copy(kept, tmp)
    return True


def _add_to_store(store: Path, verified: Path, expected: str) -> None:
    kept = store_path(store, expected)
    if kept.exists():
        return
    store.mkdir(parents=True, exist_ok=True)
    with atomic_path(kept) as tmp:
        _link_or_copy(verified, tmp)


def _link_or_copy(src: Path, dest: Path) -> None:
    """Hard-link `src` onto `dest` (no second copy on disk), copying across file systems."""
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _read_lock(lock: Path, url: str) -> str | None:
    """The checksum a lock file pins for `url`, or None when there is no lock yet."""
    if not lock.exists():
        return None
    parts = lock.read_text().split()
    if len(parts) != 2:
        raise DownloadError(
            f"{lock}: malformed checksum lock (expected 'sha256:<hex> <url>'); "
            "delete it to check and pin the file anew on its next download"
        )
    recorded, locked_url = parts
    parse_checksum(recorded)
    if locked_url != url:
        raise DownloadError(
            f"checksum lock {lock} pins the file from {locked_url}, but the config now asks for "
            f"{url}: put the new file's checksum in the config, or delete {lock} to check and "
            "pin the new file on its first download"
        )
    return recorded


def _fetch(url: str, path: Path, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "softdigits"})
    limit = f"{timeout:g} s, the time limit of config downloads.timeout_s"
    expected_size, size = None, 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(path, "wb") as out:
            expected_size = response.headers.get("Content-Length")
            while chunk := response.read(CHUNK):
                out.write(chunk)
                size += len(chunk)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"download of {url} failed: HTTP {err.code} {_one_line(err.reason)}") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise DownloadError(f"download of {url} failed: no connection within {limit}") from None
        raise DownloadError(f"download of {url} failed: cannot connect ({_one_line(err.reason)})") from None
    except TimeoutError:
        raise DownloadError(f"download of {url} failed: the server sent nothing for {limit}") from None
    except http.client.IncompleteRead as err:
        got = size + len(err.partial)
        announced = f", server announced {expected_size}" if expected_size else ""
        raise DownloadError(f"download of {url} is truncated: got {got} bytes{announced}") from None
    except (ConnectionError, http.client.HTTPException) as err:
        raise DownloadError(f"download of {url} failed: {type(err).__name__}: {_one_line(err)}") from None
    if expected_size is not None and int(expected_size) != size:
        raise DownloadError(f"download of {url} is truncated: got {size} bytes, server announced {expected_size}")


def _one_line(reason) -> str:
    """A reason as one line (urllib's redirect-loop reason spans three)."""
    return " ".join(str(reason).split())


def download_plan(corpora: dict, root: str) -> dict[str, dict[str, str]]:
    """corpus -> config file name -> local path, for each corpus whose origin is download.

    `corpora` is the config's `corpora` section; files go to `{root}/{corpus}/{file name}`.
    """
    plan = {}
    for corpus, spec in corpora.items():
        if spec["origin"] != "download":
            continue
        paths = {name: f"{root}/{corpus}/{url_filename(f['url'])}" for name, f in spec["files"].items()}
        if len(set(paths.values())) != len(paths):
            raise ValueError(f"config corpora.{corpus}.files: two URLs end in the same file name")
        plan[corpus] = paths
    return plan


def content_check(plan: dict[str, dict[str, str]], path: str) -> dict:
    """Which file a download is, for its content check before it is pinned
    (`softdigits.corpora.checks.check_download`: the corpus's registry entry's `check`).

    `plan` is `download_plan`'s answer: a path in it is that corpus's file; the only
    other download is the released soft-digits table (no corpus). Only what the file is
    goes in (no reader options), so that a reader option's change does not fetch the
    file again.
    """
    for corpus, paths in plan.items():
        for name, corpus_path in paths.items():
            if corpus_path == path:
                return {"corpus": corpus, "file_key": name}
    return {}
