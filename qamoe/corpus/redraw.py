"""A built corpus with its vision stream drawn again, from part of its face bank and under another pairing;
every other array of every shard is copied unchanged (tools/redraw_vision.py, docs/CORPUS.md "Vision").

Why: the face bank of `runs/corpus-v2` holds the 11 GRID clips, which are also the report set for "neutral
readers with both tracks" (issue 15, part 3), and the training pairing (`PairingConfig.p_agree` 0.6: a train
row's face window drawn from its label's valence class) lets a model learn which bank windows go with which
label class: with 180 face windows, 8 of them in class 0, that is memorising windows, not reading faces. Both
are properties of the vision draw only, and the draw (`qamoe.corpus.plan.plan_sample`) is a function of the
sample id, its split, its label, the corpus seed and the bank: so it can be made again without the hours of
speech synthesis and ASR behind the other streams.

How: the source's face bank and its raw-corruption banks (`<corpus>/facebank/*.npz`) are read as stored and
cut down to the videos that no `exclude` pattern (fnmatch on the video's file name) matches, in their order;
every row of every shard is planned again with `PairingConfig(p_agree, the source's no_face_fraction)` and
the source's seed and window geometry, and its vision values and mask replaced by the new draw (a "#raw"
twin through the same raw corruption as before: the corruption is drawn from the id). Rows keep their order
and shard; provenance.jsonl gets each row's new vision record; corpus.json records where the view came from.
The evaluation splits stay label-free (`plan_sample` passes the label only for `paired_splits`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from qamoe.corpus.build_io import BANK_DIR
from qamoe.corpus.facebank import FaceBank, FaceBankConfig, PairingConfig, WindowIndex
from qamoe.corpus.plan import ASR_SUFFIX, RAW_SUFFIX, CorpusConfig, CorpusRow, plan_sample
from qamoe.data.shards import read_shard, write_shard
from qamoe.errors import ConfigError, DataError
from qamoe.modality import Modality

logger = logging.getLogger(__name__)

VISION_KEYS = ("vision", "video", "end_step", "valence", "valence_class", "paired")


@dataclass(frozen=True)
class RedrawConfig:
    """exclude: fnmatch patterns of bank video names to leave out (e.g. "*.mpg": GRID). p_agree: the training
    pairing probability of the new draw (0: every split label-free)."""

    exclude: tuple[str, ...] = ()
    p_agree: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_agree <= 1.0:
            raise ConfigError(f"--p-agree {self.p_agree}: use a probability in [0, 1], e.g. 0")


def _read_bank(path: Path) -> FaceBank:
    """A stored bank, with the key it was stored under (its videos are not at hand to recompute it)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            key = json.loads(str(z["meta"][()]))["key"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path} is not a readable face bank ({exc}): rebuild the corpus's bank") from None
    return FaceBank.load(path, key)


def subset_bank(bank: FaceBank, keep: Sequence[str]) -> FaceBank:
    """`bank` with only the sequences named in `keep`, in the bank's order; its key names the subset."""
    seqs = tuple(s for s in bank.sequences if s.name in set(keep))
    digest = hashlib.sha256(json.dumps(sorted(keep)).encode()).hexdigest()[:16]
    return FaceBank(seqs, f"{bank.key}:subset:{digest}")


def kept_videos(bank: FaceBank, exclude: Sequence[str]) -> list[str]:
    names = [s.name for s in bank.sequences]
    for pattern in exclude:
        if not any(fnmatch.fnmatch(n, pattern) for n in names):
            raise ConfigError(f"--exclude {pattern!r} matches no bank video (the bank has {', '.join(names)})")
    keep = [n for n in names if not any(fnmatch.fnmatch(n, p) for p in exclude)]
    if not keep:
        raise ConfigError("--exclude leaves no video in the face bank: exclude fewer")
    return keep


def load_banks(corpus: Path, exclude: Sequence[str],
               config: FaceBankConfig) -> tuple[WindowIndex, dict[tuple[str, float], FaceBank]]:  # fmt: skip
    """The corpus's clean bank as a window index and its raw-corruption banks, each cut to the kept videos."""
    folder = corpus / BANK_DIR
    clean = folder / "bank.npz"
    if not clean.is_file():
        raise DataError(f"{clean} not found: {corpus} is not a corpus of tools/build_corpus.py (it has no face bank)")
    bank = _read_bank(clean)
    keep = kept_videos(bank, exclude)
    raw: dict[tuple[str, float], FaceBank] = {}
    for path in sorted(folder.glob("bank-*-*.npz")):
        kind, level = path.stem[len("bank-"):].rsplit("-", 1)
        raw[(kind, float(level))] = subset_bank(_read_bank(path), keep)
    return WindowIndex(subset_bank(bank, keep), config), raw


def source_config(corpus: Path, redraw: RedrawConfig) -> tuple[CorpusConfig, dict[str, Any]]:
    """The source's corpus config with the new pairing, and its corpus.json record."""
    try:
        record = json.loads((corpus / "corpus.json").read_text(encoding="utf-8"))
        cfg = record["config"]
        pairing = PairingConfig(p_agree=redraw.p_agree, no_face_fraction=cfg["pairing"]["no_face_fraction"])
        config = CorpusConfig(seed=cfg["seed"], pairing=pairing, bank=FaceBankConfig(**cfg["bank"]),
                              paired_splits=tuple(cfg["paired_splits"]))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{corpus}/corpus.json is missing or unreadable ({exc}): is it a built corpus?") from None
    return config, record


def base_of(sample_id: str) -> str:
    """The id a row's draws are seeded by: an ASR or raw twin shares its clean row's."""
    for suffix in (ASR_SUFFIX, RAW_SUFFIX):
        if sample_id.endswith(suffix):
            return sample_id[: -len(suffix)]
    return sample_id


def redraw_rows(ids: np.ndarray, labels: np.ndarray, split: str, config: CorpusConfig, index: WindowIndex,
                banks: dict[tuple[str, float], FaceBank]) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:  # fmt: skip
    """(values [N, steps, D], mask [N, steps], vision records) of the new draw for these rows."""
    values, masks, records = [], [], []
    for sample_id, label in zip(ids, labels):
        key = str(sample_id)
        plan = plan_sample(CorpusRow(key, base_of(key), "", float(label), split), config, index, banks)
        values.append(plan.vision[0])
        masks.append(plan.vision[1])
        records.append({k: plan.record[k] for k in VISION_KEYS if k in plan.record})
    return np.stack(values), np.stack(masks), records


def _provenance(corpus: Path) -> dict[str, dict[str, Any]]:
    path = corpus / "provenance.jsonl"
    if not path.is_file():
        return {}
    lines = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return {r["id"]: r for r in lines}  # a resumed build may repeat an id: the last line is the row's


def redraw_corpus(corpus: Path, out: Path, redraw: RedrawConfig, *, created_by: str) -> Counter[str]:
    """Write `out`: every shard of `corpus` with its vision re-drawn (module docstring); rows per split."""
    if out.resolve() == corpus.resolve():
        raise ConfigError(f"--out {out} must differ from --corpus: the re-drawn corpus is a second folder")
    if out.exists() and any(out.glob("*.npz")):
        raise ConfigError(f"{out} already holds shards: remove it or choose another --out")
    shards = sorted(corpus.glob("*.npz"))
    if not shards:
        raise DataError(f"{corpus} holds no shards: build the corpus first (tools/build_corpus.py)")
    config, record = source_config(corpus, redraw)
    index, banks = load_banks(corpus, redraw.exclude, config.bank)
    provenance = _provenance(corpus)
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    with (out / "provenance.jsonl").open("w", encoding="utf-8") as prov:
        for path in shards:
            fs, meta = read_shard(path)
            if fs.feats[Modality.VISION].shape[1] != config.bank.steps:
                raise DataError(f"{path}: vision has {fs.feats[Modality.VISION].shape[1]} steps, the bank's "
                                f"windows {config.bank.steps}: not a shard of this corpus")
            values, mask, records = redraw_rows(fs.ids, fs.labels, meta["split"], config, index, banks)
            feats = {**fs.feats, Modality.VISION: values.astype(np.float32)}
            masks = {**fs.masks, Modality.VISION: mask}
            write_shard(out / path.name, replace(fs, feats=feats, masks=masks), split=meta["split"],
                        feature_spec=meta["feature_spec"], created_by=created_by)  # fmt: skip
            for sample_id, vision in zip(fs.ids, records):
                old = {k: v for k, v in provenance.get(str(sample_id), {"id": str(sample_id)}).items()
                       if k not in VISION_KEYS}  # fmt: skip
                prov.write(json.dumps({**old, **vision}, sort_keys=True) + "\n")
            counts[meta["split"]] += len(fs)
            logger.info("%s: %d rows re-drawn", path.name, len(fs))
    record["vision_redraw"] = {"source": str(corpus), "exclude": list(redraw.exclude), "p_agree": redraw.p_agree,
                               "videos": [s.name for s in index.bank.sequences],
                               "class_share": {str(c): index.class_share(c) for c in (-1, 0, 1)},
                               "face_windows": len(index.windows)}  # fmt: skip
    record["config"]["pairing"]["p_agree"] = redraw.p_agree
    (out / "corpus.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return counts
