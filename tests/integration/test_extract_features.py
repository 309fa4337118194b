"""Offline extraction for training: `qamoe.corpus.offline.extract_clip` and `tools/extract_features.py`.

Real media only. A clip synthesised here (an OpenCV-drawn shape, MJPG, plus espeak-ng speech) needs no shared
data; the tool runs, as a user runs it, on a tiny MMSA raw layout built from four GRID clips of
../shared/media/grid (CC BY 4.0, see ../shared/README.md; skipped where ../shared is absent), one file of
random bytes and one missing file. Needs the built engines (`python tools/build_engine.py`; skipped with that
reason where absent).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.features.spec import default_feature_spec
from edge.manifest import ManifestError
from qamoe.corpus.offline import (
    ClipReadError,
    Extractors,
    OfflineConfig,
    OfflineConfigError,
    extract_clip,
)
from qamoe.data.featureset import FeatureSet
from qamoe.data.gather import read_shards
from qamoe.data.shards import read_shard_meta, write_shard
from qamoe.data.sources import load_source
from qamoe.errors import DataError
from qamoe.modality import Modality

REPO_ROOT = Path(__file__).resolve().parents[2]
GRID = REPO_ROOT.parent / "shared" / "media" / "grid"
SPEC = default_feature_spec()
FROM_ASR = SPEC.text.columns.index("from_asr")
WORD_PROB = SPEC.text.columns.index("asr_word_prob")
# (video_id, clip_id) -> (GRID file, gold transcript, split); plus one corrupt and one missing clip
GRID_ROWS = {
    ("vidA", "1"): ("bbaf2n", "bin blue at f two now", "train"),
    ("vidA", "2"): ("lwbsza", "lay white by s zero again", "train"),
    ("vidB", "1"): ("pwij3p", "place white in j three please", "valid"),
    ("vidB", "2"): ("sbia1a", "set blue in a one again", "test"),
}
CORRUPT, MISSING = "vidB$_$3", "vidB$_$9"


@pytest.fixture(scope="module")
def extractors() -> Extractors:
    try:
        ext = Extractors.create()
    except ManifestError as exc:
        pytest.skip(f"engines not built ({exc}): run `python tools/build_engine.py`")
    ext.check(SPEC)
    return ext


# ------------------------------------------------------------------------------ a synthesised clip
@pytest.fixture(scope="module")
def synth_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(video: 2.8 s of a moving drawn disc, MJPG at 25 fps; audio: espeak-ng speech + 0.8 s of silence)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (apt install espeak-ng)")
    root = tmp_path_factory.mktemp("synth")
    wav, video = root / "speech.wav", root / "shape.avi"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-g", "5", "-w", str(wav),
                    "this is a really good film"], check=True, capture_output=True, timeout=60)
    with wave.open(str(wav), "rb") as f:
        params, speech = f.getparams(), f.readframes(f.getnframes())
    with wave.open(str(wav), "wb") as f:  # 0.8 s of digital silence after the speech
        f.setparams(params)
        f.writeframes(speech + bytes(params.sampwidth * params.nchannels * round(0.8 * params.framerate)))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (320, 240))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for i in range(70):
        frame = np.full((240, 320, 3), 40, np.uint8)
        cv2.circle(frame, (60 + 3 * i, 120), 30, (0, 200, 255), -1)
        writer.write(frame)
    writer.release()
    return video, wav


def test_synthesised_clip_gives_the_spec_window(
    extractors: Extractors, synth_clip: tuple[Path, Path]
) -> None:
    video, wav = synth_clip
    clip = extract_clip(video, wav, "this is a really good film", spec=SPEC, extractors=extractors)
    for name in ("text", "audio", "vision"):
        s, want = clip.streams[name], SPEC.stream(name)
        assert s.values.shape == (want.max_steps, want.dim) and s.values.dtype == np.float32
        assert s.mask.shape == (want.max_steps,) and s.mask.dtype == np.bool_
        assert np.isfinite(s.values).all() and not s.values[~s.mask].any()  # padding holds zeros
    st = clip.stats
    # the window ends with the speech (+ pad, on the 40 ms grid), before the silence the clip ends with
    assert st.speech_end_s is not None and st.speech_end_s < st.duration_s - 0.8
    assert st.speech_end_s + 0.25 <= st.window_end_s < st.speech_end_s + 0.25 + 0.04 + 1e-9
    assert st.window_end_s - st.window_start_s == pytest.approx(SPEC.window_s)
    # the clip is shorter than the window: the early audio slots are masked, the rest hold one frame each
    audio = clip.streams["audio"].mask
    n_in_clip = round(st.window_end_s / 0.04)
    assert not audio[:-n_in_clip].any() and audio[-n_in_clip:].all()
    # a drawn disc is no face: every vision step is masked, though the frames were decoded
    assert st.video_frames >= st.window_end_s * 25 and not clip.streams["vision"].mask.any()
    text = clip.streams["text"]
    assert 6 <= text.mask.sum() <= 10 and clip.transcript_source == "gold"
    assert (text.values[text.mask, FROM_ASR] == 0).all() and (text.values[text.mask, WORD_PROB] == 1).all()


def test_a_window_inside_the_speech_has_no_words(extractors: Extractors, synth_clip: tuple[Path, Path]) -> None:
    """OfflineConfig(cut=f): the window ends at f of the speech's span (on the 40 ms grid), and the text stream
    is what the live path shows before the ASR has the words: encode_words([]), all masked."""
    _, wav = synth_clip
    whole = extract_clip(None, wav, "this is a really good film", spec=SPEC, extractors=extractors)
    early, late = (extract_clip(None, wav, "this is a really good film", spec=SPEC, extractors=extractors,
                                config=OfflineConfig(cut=f)) for f in (0.3, 0.8))  # fmt: skip
    end = whole.stats.speech_end_s
    assert end is not None
    for clip in (early, late):
        assert 0.04 <= clip.stats.window_end_s < end - 0.1
        assert round(clip.stats.window_end_s / 0.04, 6).is_integer()
        assert not clip.streams["text"].mask.any() and clip.transcript == ""
        assert clip.streams["audio"].mask[-1]  # speech up to the window's end is heard
    assert early.stats.window_end_s < late.stats.window_end_s
    with pytest.raises(OfflineConfigError, match="cut"):
        OfflineConfig(cut=1.0)
    with pytest.raises(OfflineConfigError, match="cut needs audio"):
        extract_clip(synth_clip[0], None, "good", spec=SPEC, extractors=extractors, config=OfflineConfig(cut=0.5))


def test_clip_end_mode_missing_streams_and_unreadable_files(
    extractors: Extractors, synth_clip: tuple[Path, Path], tmp_path: Path
) -> None:
    video, wav = synth_clip
    at_end = OfflineConfig(end_at="clip")
    clip = extract_clip(None, wav, None, spec=SPEC, extractors=extractors, config=at_end)
    assert clip.stats.window_end_s == pytest.approx(clip.stats.duration_s)
    assert clip.stats.speech_end_s is None and clip.streams["audio"].mask[-1]
    assert not clip.streams["vision"].mask.any() and not clip.streams["text"].mask.any()
    assert clip.transcript_source == "none"
    clip = extract_clip(video, None, "good", spec=SPEC, extractors=extractors)  # video only: ends with it
    assert clip.stats.duration_s == pytest.approx(70 / 25) and not clip.streams["audio"].mask.any()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(20_000))
    for path in (corrupt, tmp_path / "absent.mp4"):
        with pytest.raises(ClipReadError):
            extract_clip(path, path, "x", spec=SPEC, extractors=extractors)
    with pytest.raises(OfflineConfigError, match="asr=True"):
        extract_clip(video, wav, "asr", spec=SPEC, extractors=extractors)


def test_extractors_refuse_a_spec_they_do_not_produce(extractors: Extractors) -> None:
    other = dataclasses.replace(SPEC, text=dataclasses.replace(SPEC.text, max_steps=32))
    with pytest.raises(OfflineConfigError, match="max_steps"):
        extractors.check(other)


# ------------------------------------------------------------------------------ the tool on GRID clips
def _run_tool(*args: str | Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "tools/extract_features.py", *map(str, args)]
    return subprocess.run(cmd, check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def mmsa_raw(tmp_path_factory: pytest.TempPathFactory, extractors: Extractors) -> Path:
    """Raw/<video_id>/<clip_id>.mp4 (GRID's MPEG-1 files under an .mp4 name: FFmpeg reads the content) and a
    label.csv, in MMSA's layout."""
    if not all((GRID / f"{g}.mpg").is_file() for g, _, _ in GRID_ROWS.values()):
        pytest.skip(f"GRID clips not found in {GRID}: these tests need ../shared beside the repository")
    root = tmp_path_factory.mktemp("mmsa")
    rows = [["video_id", "clip_id", "text", "label", "mode"]]
    for (vid, cid), (grid, text, split) in GRID_ROWS.items():
        (root / "Raw" / vid).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(GRID / f"{grid}.mpg", root / "Raw" / vid / f"{cid}.mp4")
        rows.append([vid, cid, text, "0.5", split])
    (root / "Raw" / "vidB" / "3.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))
    rows += [["vidB", "3", "corrupt", "1.0", "train"], ["vidB", "9", "missing", "-1.0", "dev"]]
    with (root / "label.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root


@pytest.mark.shared
def test_tool_writes_resumable_shards_that_training_reads(mmsa_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    base = ("--raw", mmsa_raw, "--labels", mmsa_raw / "label.csv", "--out", out, "--shard-size", "2")
    first = _run_tool(*base, "--limit", "1")  # an interrupted run: it leaves train-00000 half full
    assert first.returncode == 0, first.stderr
    assert "extracted 1 clip(s) (train 1)" in first.stdout and "skipped 0" in first.stdout
    assert read_shard_meta(out / "train-00000.npz")["n"] == 1
    second = _run_tool(*base)  # continues: fills train-00000, then the rest
    assert second.returncode == 0, second.stderr
    assert "extracted 3 clip(s) (train 1, valid 1, test 1)" in second.stdout, second.stdout
    assert "skipped 2" in second.stdout and "1 already done" in second.stdout
    assert sorted(p.name for p in out.glob("*.npz")) == [f"{s}-00000.npz" for s in ("test", "train", "valid")]
    skipped = {s["id"]: s for s in json.loads((out / "skipped.json").read_text())["skipped"]}
    assert set(skipped) == {CORRUPT, MISSING} and all(s["reason"] for s in skipped.values())

    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    third = _run_tool(*base)  # nothing left to do
    assert third.returncode == 0 and "extracted 0 clip(s)" in third.stdout
    assert "4 already done" in third.stdout and "+2 skipped before" in third.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")} == stamps

    data, info = load_source(f"shards:{out}")
    assert info["feature_spec"] == SPEC.to_dict()
    ids = {split: sorted(fs.ids.tolist()) for split, fs in data.items()}
    assert ids == {"train": ["vidA$_$1", "vidA$_$2"], "valid": ["vidB$_$1"], "test": ["vidB$_$2"]}
    for fs in data.values():
        _check_grid_features(fs, from_asr=0.0)
    other = dataclasses.replace(SPEC, hop_s=1.0).to_dict()
    with pytest.raises(DataError, match="different feature_spec"):
        read_shards(out, expect_spec=other)


def _check_grid_features(fs: FeatureSet, *, from_asr: float) -> None:
    for m in Modality:
        assert fs.feats[m].shape[1:] == (SPEC.stream(str(m)).max_steps, SPEC.stream(str(m)).dim)
    for i in range(len(fs)):
        audio, vision = fs.masks[Modality.AUDIO][i], fs.masks[Modality.VISION][i]
        text = fs.masks[Modality.TEXT][i]
        # 3 s clips in a 4 s window ending ~0.3 s after the speech: 2-3 s of audio frames, the rest masked
        assert 50 <= audio.sum() <= 75 and audio[-1] and not audio[0]
        in_clip_vision_slots = int(audio.sum() * 0.04 / 0.1)
        assert vision.sum() >= 0.95 * in_clip_vision_slots  # the face is found in (nearly) every frame
        assert text.sum() >= 5
        assert (fs.feats[Modality.TEXT][i, text, FROM_ASR] == from_asr).all()


@pytest.mark.shared
def test_tool_with_live_asr_and_its_errors(mmsa_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "asr"
    base = ("--raw", mmsa_raw, "--labels", mmsa_raw / "label.csv", "--out", out)
    r = _run_tool(*base, "--transcripts", "asr", "--splits", "valid,test")
    assert r.returncode == 0, r.stderr
    assert "extracted 2 clip(s) (valid 1, test 1)" in r.stdout and "skipped 1" in r.stdout  # the missing one
    fs, _ = read_shards(out)
    _check_grid_features(fs, from_asr=1.0)
    words = fs.feats[Modality.TEXT][..., WORD_PROB][fs.masks[Modality.TEXT]]
    assert ((words > 0) & (words <= 1)).all() and words.min() < 1  # Whisper's, not a gold transcript's 1s

    r = _run_tool(*base, "--transcripts", "gold")  # resuming with other options: refused, one line
    assert r.returncode == 2 and "--transcripts asr" in r.stderr and "Traceback" not in r.stderr
    stranger = dataclasses.replace(SPEC, hop_s=1.0).to_dict()
    write_shard(out / "train-00007.npz", fs.subset(slice(0, 1)), split="train", feature_spec=stranger)
    r = _run_tool(*base, "--transcripts", "asr")
    assert r.returncode == 3 and "another feature spec" in r.stderr and "Traceback" not in r.stderr
    r = _run_tool("--raw", mmsa_raw, "--labels", mmsa_raw / "nope.csv", "--out", tmp_path / "x")
    assert r.returncode == 3 and r.stderr.strip().splitlines()[-1].startswith("error: cannot read --labels")

