"""Helpers for the live-pipeline tests: an engines directory holding the built assets plus a QA-MoE engine
for the live feature spec, and a real ZeroMQ subscriber that collects what qamoe-live publishes.

The model is a freshly initialised QA-MoE with the live input dims (the pipeline's plumbing is under test, not
its accuracy); it goes through the real checkpoint -> build_engine -> manifest path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import zmq

REPO = Path(__file__).resolve().parents[1]
GRID = REPO.parent / "shared" / "media" / "grid"


def make_live_engines(tmp: Path) -> Path:
    import torch

    from edge.features.spec import default_feature_spec
    from qamoe.checkpoint import save_checkpoint
    from qamoe.config import ModelConfig
    from qamoe.modality import Modality
    from qamoe.models import create_model

    real = REPO / "engines"
    if not (real / "manifest.json").is_file():
        subprocess.run([sys.executable, str(REPO / "tools" / "build_engine.py")], check=True, cwd=REPO)
    engines = tmp / "engines"
    engines.mkdir(parents=True)
    shutil.copy(real / "manifest.json", engines / "manifest.json")
    (engines / "assets").symlink_to(real / "assets", target_is_directory=True)
    spec = default_feature_spec()
    torch.manual_seed(0)
    dims = {Modality(k): v for k, v in spec.dims.items()}
    model = create_model("qamoe", ModelConfig(input_dims=dims, d_model=32, expert_hidden=48))
    ck = save_checkpoint(tmp / "checkpoint", model, model_name="qamoe", feature_spec=spec.to_dict())
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_engine.py"), "--engines-dir", str(engines),
         "--checkpoint", str(ck), "--only", "model"],
        check=True, cwd=REPO, capture_output=True,
    )
    return engines


class Collector:
    """A real SUB socket on a thread, collecting (topic, payload) until stopped."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.messages: list[tuple[str, dict]] = []
        self._stop = threading.Event()
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(endpoint)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._sock.poll(100):
                topic, body = self._sock.recv_multipart()
                self.messages.append((topic.decode(), json.loads(body)))

    def stop(self, settle_s: float = 0.5) -> list[tuple[str, dict]]:
        time.sleep(settle_s)
        self._stop.set()
        self._thread.join(2)
        self._sock.close()
        self._ctx.term()
        return self.messages

    def of(self, topic_suffix: str) -> list[dict]:
        return [b for t, b in self.messages if t.endswith(topic_suffix)]


def free_endpoint() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"
