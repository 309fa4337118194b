#!/usr/bin/env python3
"""What a linear probe can read of valence from a voice, by representation (issue 15, part 2; a study, not shipped).

  python tools/study_voice_encoder.py --affect ../shared/data/affect --corpus runs/affect
  python tools/study_voice_encoder.py --affect ../shared/data/affect --corpus runs/affect --schemes live utterance blocks

The same probe on three representations of each clip of the real-affect corpus (qamoe.corpus.affect; RAVDESS,
EmoDB, speech_va, split by speaker), the live audio columns being the same-run baseline:

  live        the 22 live audio columns of the corpus window (tools/build_affect_corpus.py), pooled over the
              window's valid steps: mean and standard deviation per column (44 numbers)
  utterance   Whisper tiny.en's encoder (the live ASR's own model, engines/assets) on the whole clip, its output
              frames over the clip pooled the same way (2 x 384)
  blocks      the same encoder as a live extractor could run it: at the end of every 320 ms block, the last
              --context seconds of audio are encoded and the frames of the newest block kept; pooled as above

Whisper takes 30 s windows; `--pad S` encodes the content plus S seconds of its zero padding, rounded up to whole
seconds (edge.asr.bounded.trimmed_frames, as the live decodes do; a negative S: the full 30 s window).

The probe is ridge regression on the standardised pooled vector, fitted on the training speakers' clips (every
emotion, targets from the corpus's emotion -> valence map), its penalty chosen on the valid speakers (the mean of
RAVDESS's and EmoDB's MAE); the metrics are issue 15's (qamoe.corpus.affect_eval) on the valid and the test
speakers. A probe shows what a representation carries, not what QA-MoE will learn from it.
Exit codes: 0 ok, 2 bad options, 3 data unreadable.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.asr.audio_file import load_audio_16k
from edge.asr.bounded import WINDOW_FRAMES, trimmed_frames
from edge.asr.transcriber import resolve_model_dir
from qamoe.corpus.affect import AffectClip, read_clips
from qamoe.corpus.affect_eval import affect_rows, format_rows
from qamoe.corpus.extract_io import run_tool
from qamoe.data.sources import load_source
from qamoe.errors import ConfigError

log = logging.getLogger("study_voice_encoder")

SAMPLE_RATE = 16000
BLOCK_S = 0.32  # the live audio extractor's block (edge/features/audio.py)
ENCODER_HOP_S = 0.02  # one Whisper encoder frame
ALPHAS = (1.0, 10.0, 100.0, 1000.0, 10000.0)
SCHEMES = ("live", "utterance", "blocks")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    p.add_argument("--affect", type=Path, required=True, help="../shared/data/affect")
    p.add_argument("--corpus", type=Path, help="the affect corpus (tools/build_affect_corpus.py): the live scheme")
    p.add_argument("--schemes", nargs="+", choices=SCHEMES, default=["live", "utterance"])
    p.add_argument("--pad", type=float, default=1.0, help="seconds of Whisper's zero padding encoded (< 0: all)")
    p.add_argument("--context", type=float, default=4.0, help="blocks: seconds of audio encoded per block")
    p.add_argument("--engines", type=Path, default=REPO_ROOT / "engines", help="where build_engine put Whisper")
    p.add_argument("--cache", type=Path, help="a .npz to keep the pooled Whisper vectors in (and reuse)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if "live" in args.schemes and args.corpus is None:
        p.error("--schemes live needs --corpus")
    if args.context <= BLOCK_S:
        p.error(f"--context must exceed one block ({BLOCK_S} s)")
    return args


def pooled(frames: np.ndarray) -> np.ndarray:
    """[T, D] -> [2D]: the mean and the standard deviation over the frames."""
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0)]).astype(np.float32)


class WhisperEncoder:
    """Whisper tiny.en's encoder output for a 16 kHz buffer: [frames of content, 384]."""

    def __init__(self, engines: Path, pad_s: float) -> None:
        import ctranslate2
        from faster_whisper import WhisperModel

        self._storage = ctranslate2.StorageView
        self._model = WhisperModel(str(resolve_model_dir(None, engines)), device="cpu", compute_type="int8",
                                   cpu_threads=1, local_files_only=True)  # fmt: skip
        self._pad_frames = None if pad_s < 0 else round(pad_s * 100)

    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        mel = self._model.feature_extractor(pcm)
        content = mel.shape[-1]
        full = np.zeros((mel.shape[0], WINDOW_FRAMES), np.float32)
        full[:, : min(content, WINDOW_FRAMES)] = mel[:, :WINDOW_FRAMES]
        n = WINDOW_FRAMES if self._pad_frames is None else trimmed_frames(full, self._pad_frames)
        out = np.asarray(self._model.model.encode(self._storage.from_array(np.ascontiguousarray(full[None, :, :n])), to_cpu=True))[0]
        return out[: max(1, min(content, WINDOW_FRAMES) // 2)]


def utterance_vector(encode: WhisperEncoder, pcm: np.ndarray) -> np.ndarray:
    return pooled(encode(pcm))


def blocks_vector(encode: WhisperEncoder, pcm: np.ndarray, *, context_s: float) -> np.ndarray:
    """Every BLOCK_S, encode the last context_s of audio and keep the frames of the newest block."""
    block, context = round(BLOCK_S * SAMPLE_RATE), round(context_s * SAMPLE_RATE)
    keep = round(BLOCK_S / ENCODER_HOP_S)
    frames = []
    for end in range(block, len(pcm) + 1, block):
        frames.append(encode(pcm[max(0, end - context) : end])[-keep:])
    return pooled(np.concatenate(frames) if frames else encode(pcm))


def whisper_vectors(clips: Sequence[AffectClip], vector: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    t0, out = time.perf_counter(), []
    for i, clip in enumerate(clips):
        out.append(vector(load_audio_16k(clip.path)[: 30 * SAMPLE_RATE]))
        if i % 200 == 199:
            log.info("%d / %d clips, %.0f s", i + 1, len(clips), time.perf_counter() - t0)
    return np.stack(out)


def live_vectors(corpus: Path, keys: Sequence[str]) -> np.ndarray:
    """The live audio columns of each clip's corpus window, pooled over its valid steps."""
    data, _ = load_source(f"shards:{corpus}")
    by_key = {}
    for fs in data.values():
        from qamoe.modality import Modality

        x, m = fs.feats[Modality.AUDIO], fs.masks[Modality.AUDIO]
        for i, key in enumerate(map(str, fs.ids)):
            by_key[key] = pooled(x[i][m[i]] if m[i].any() else x[i][:1] * 0)
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise ConfigError(f"{corpus} lacks {len(missing)} clips (first: {missing[0]}): build it from --affect")
    return np.stack([by_key[k] for k in keys])


def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> Callable[[np.ndarray], np.ndarray]:
    """Ridge regression on standardised inputs: argmin |X w + b - y|^2 + alpha |w|^2."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    b = float(y.mean())
    return lambda q: ((q - mean) / std) @ w + b


def probe(vectors: np.ndarray, clips: Sequence[AffectClip]) -> tuple[float, dict[str, list[dict]]]:
    """Fit on train, choose alpha on valid, -> (alpha, {split: affect_rows})."""
    split = np.array([c.split for c in clips])
    keys = np.array([c.key for c in clips])
    labels = np.array([c.label for c in clips], np.float64)
    train = split == "train"

    def score(alpha: float) -> float:
        rows = affect_rows(keys[split == "valid"], ridge(vectors[train], labels[train], alpha)(vectors[split == "valid"]),
                           labels[split == "valid"])  # fmt: skip
        return float(np.mean([r["mae"] for r in rows if r["dataset"] in ("ravdess", "emodb")]))

    alpha = min(ALPHAS, key=score)
    model = ridge(vectors[train], labels[train], alpha)
    return alpha, {s: affect_rows(keys[split == s], model(vectors[split == s]), labels[split == s])
                   for s in ("valid", "test")}  # fmt: skip


def main(args: argparse.Namespace) -> int:
    clips = [c for c in read_clips(args.affect) if c.split in ("train", "valid", "test")]
    log.info("%d clips", len(clips))
    cache = dict(np.load(args.cache)) if args.cache is not None and args.cache.exists() else {}
    for scheme in args.schemes:
        name = f"{scheme}_pad{args.pad:g}" + (f"_ctx{args.context:g}" if scheme == "blocks" else "")
        t0 = time.perf_counter()
        if scheme == "live":
            vectors = live_vectors(args.corpus, [c.key for c in clips])
        elif name in cache:
            vectors = cache[name]
        else:
            encode = WhisperEncoder(args.engines, args.pad)
            if scheme == "utterance":
                vectors = whisper_vectors(clips, functools.partial(utterance_vector, encode))
            else:
                vectors = whisper_vectors(clips, functools.partial(blocks_vector, encode, context_s=args.context))
            cache[name] = vectors
            if args.cache is not None:
                np.savez(args.cache, **cache)
        seconds = time.perf_counter() - t0
        alpha, rows = probe(vectors, clips)
        for split, r in rows.items():
            print(format_rows(r, f"\n{name}: {vectors.shape[1]} numbers per clip, ridge alpha {alpha:g} "
                                 f"(chosen on valid), {split} speakers; {seconds:.0f} s to compute"))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
