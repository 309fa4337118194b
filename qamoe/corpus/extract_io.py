"""The resumable shard output folder shared by tools/extract_features.py and tools/build_corpus.py.

Part of the bridge layer `qamoe.corpus` (docs/ARCHITECTURE.md): it joins the model package's shard format
(`qamoe.data.shards`, `FeatureSet`, typed `qamoe.errors`) with the runtime's extractors.

An output folder holds `<split>-00000.npz` ... (`ShardSet`: the shards are the record of what is done; one
open, partly filled shard per split is rewritten every `checkpoint_every` samples and on exit), `extract.json`
(the options a re-run must match: `check_run_options`) and `skipped.json` (samples that could not be made,
with the reason: `load_skipped` / `save_skipped`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from edge.asr import AsrConfigError, AsrError
from edge.features.audio_config import AudioConfigError
from edge.features.audio_quality import AudioInputError
from edge.features.dsp_native import DspLibraryError
from edge.features.spec import FeatureSpec, FeatureSpecError
from edge.features.text import TextFeatureError
from edge.features.vad import VadModelError
from edge.manifest import ManifestError
from qamoe.corpus.jobs import CLIP_ERRORS
from qamoe.corpus.offline import Extractors
from qamoe.corpus.offline_errors import OfflineError
from qamoe.data.featureset import FeatureSet
from qamoe.data.gather import concat_featuresets
from qamoe.data.shards import read_shard, read_shard_meta, write_shard
from qamoe.errors import ConfigError, DataError
from qamoe.modality import Modality

__all__ = ["CLIP_ERRORS", "SPLITS", "SPLIT_ALIASES", "ShardSet", "add_shard_args", "check_run_options",
           "load_skipped", "make_extractors", "progress", "run_tool", "sample_featureset", "save_skipped",
           "write_json_atomic"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {"dev": "valid", "val": "valid", "validation": "valid"}
SHARD_NAME = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{5})\.npz$")
RUN_FILE, SKIPPED_FILE = "extract.json", "skipped.json"
T = TypeVar("T")


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def sample_featureset(streams: Mapping[Modality, tuple[np.ndarray, np.ndarray]], label: float,
                      key: str) -> FeatureSet:
    """One sample as a one-sample FeatureSet: `streams` maps each modality to its (values, mask)."""
    return FeatureSet(feats={m: v[None] for m, (v, _) in streams.items()},
                      masks={m: k[None] for m, (_, k) in streams.items()},
                      labels=np.array([label], np.float32), ids=np.array([key]))


class ShardSet:
    """The shards of one output folder: the clips they already hold, and one open (partly filled) shard per
    split that new clips go to."""

    def __init__(
        self, out: Path, spec: FeatureSpec, *, shard_size: int, checkpoint_every: int, created_by: str
    ) -> None:
        self.out, self.shard_size, self.checkpoint_every = out, shard_size, checkpoint_every
        self.spec = spec
        self.spec_dict = json.loads(json.dumps(spec.to_dict()))  # as it reads back from a shard
        self.created_by = created_by
        self.done: set[str] = set()
        self._index: dict[str, int] = {}  # split -> index of its open shard
        self._open: dict[str, list[FeatureSet]] = {}  # split -> samples of the open shard
        self._unsaved: Counter[str] = Counter()
        self._scan()

    def _scan(self) -> None:
        last: dict[str, tuple[int, Path, int]] = {}
        for path in sorted(self.out.glob("*.npz")):
            m = SHARD_NAME.match(path.name)
            if not m:
                continue
            meta = read_shard_meta(path)
            if meta["feature_spec"] != self.spec_dict:
                raise DataError(f"{path} holds features of another feature spec: extract into a new --out "
                                "folder (or delete the old shards)")
            with np.load(path, allow_pickle=False) as z:  # the ids member only, not the features
                self.done.update(z["id"].astype(str).tolist())
            split, index = m["split"], int(m["index"])
            if split not in last or index > last[split][0]:
                last[split] = (index, path, int(meta["n"]))
        for split, (index, path, n) in last.items():
            if n < self.shard_size:
                self._index[split], self._open[split] = index, [read_shard(path)[0]]
                logger.info("resuming %s: %d clip(s) already there", path.name, n)
            else:
                self._index[split] = index + 1

    def add(self, split: str, fs: FeatureSet) -> None:
        self._open.setdefault(split, []).append(fs)
        self._index.setdefault(split, 0)
        self.done.update(fs.ids.tolist())
        self._unsaved[split] += 1
        if sum(len(s) for s in self._open[split]) >= self.shard_size:
            self._write(split)
            self._index[split] += 1
            self._open[split] = []
        elif self._unsaved[split] >= self.checkpoint_every:
            self._write(split)

    def flush(self) -> None:
        """Write every open shard that holds unsaved clips."""
        for split in list(self._open):
            if self._unsaved[split] and self._open[split]:
                self._write(split)

    def _write(self, split: str) -> None:
        path = self.out / f"{split}-{self._index[split]:05d}.npz"
        fs = concat_featuresets(self._open[split])
        self._open[split] = [fs]
        write_shard(path, fs, split=split, feature_spec=self.spec_dict, created_by=self.created_by)
        self._unsaved[split] = 0


def check_run_options(out: Path, options: dict[str, Any]) -> None:
    """A re-run into `out` must use the options its shards were made with (recorded in extract.json)."""
    path = out / RUN_FILE
    if path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8")).get("options", {})
        except (OSError, json.JSONDecodeError, AttributeError) as e:
            raise DataError(f"{path} is unreadable ({e}): delete it to start over in this folder") from None
        diff = sorted(k for k in options if before.get(k) != options[k])
        if diff:
            was = ", ".join(f"--{k.replace('_', '-')} {before.get(k)}" for k in diff)
            raise ConfigError(f"{out} was extracted with {was}: resume with those options, or use a new "
                              "--out")
    write_json_atomic(path, {"format": "qamoe-extract-run", "version": 1, "options": options})


def load_skipped(out: Path) -> dict[str, dict[str, str]]:
    path = out / SKIPPED_FILE
    if not path.is_file():
        return {}
    try:
        items = json.loads(path.read_text(encoding="utf-8"))["skipped"]
        return {item["id"]: item for item in items}
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{path} is unreadable ({e}): delete it (those clips will be retried)") from None


def save_skipped(out: Path, skipped: dict[str, Any]) -> None:
    write_json_atomic(out / SKIPPED_FILE, {"skipped": sorted(skipped.values(), key=lambda s: s["id"])})


def make_extractors(asr: bool, spec: FeatureSpec) -> Extractors:
    """The live extractors for `spec` (with the voice encoder's columns if it has them), checked against it;
    ConfigError naming the fix when engines are missing."""
    try:
        extractors = Extractors.create(asr=asr, voice_encoder=spec.voice_encoder)
        extractors.check(spec)
    except (ManifestError, AsrError, AsrConfigError, TextFeatureError, VadModelError, DspLibraryError,
            FeatureSpecError, OfflineError, AudioInputError, AudioConfigError) as e:  # fmt: skip
        raise ConfigError(f"cannot build the feature extractors: {e}") from None
    return extractors


@contextlib.contextmanager
def progress(items: Iterable[T], **tqdm_args: Any) -> Iterator[Iterator[T]]:
    """`with progress(items) as it:` iterates `items` with a tqdm bar on a terminal (none when not a tty), log
    lines printed above it. Leaving the block, however it is left (the end, an error, Ctrl-C, SIGTERM), closes
    `items` when it is a generator: a worker pool behind it (`qamoe.corpus.jobs.run_jobs`) stops there and
    then, not whenever the traceback holding the generator is freed."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    bar = tqdm(items, disable=None, **tqdm_args)
    try:
        with logging_redirect_tqdm():
            yield iter(bar)
    finally:
        bar.close()
        close = getattr(items, "close", None)
        if callable(close):
            close()


def add_shard_args(p: argparse.ArgumentParser, unit: str) -> None:
    """--shard-size and --checkpoint-every, the ShardSet's two knobs."""
    p.add_argument("--shard-size", type=int, default=500)
    p.add_argument("--voice-encoder", action="store_true",
                   help="the audio stream also carries Whisper's encoder columns (not the default spec yet)")
    p.add_argument("--checkpoint-every", type=int, default=50, help=f"rewrite the open shard every N {unit}")


def run_tool(parse_args: Callable[[list[str]], argparse.Namespace],
             main: Callable[[argparse.Namespace], int], argv: list[str]) -> int:
    """A tool's entry point: parse, set up logging, run `main` with typed errors mapped to exit codes."""
    from qamoe.cli import run_main, setup_logging

    ns = parse_args(argv)
    setup_logging(ns.verbose)
    return run_main(lambda: main(ns), verbose=ns.verbose)
