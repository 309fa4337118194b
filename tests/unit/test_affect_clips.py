"""Reading the real-affect corpora: file names -> emotion, valence target and a split by speaker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qamoe.corpus.affect import (
    EMODB_SPLITS,
    NEGATIVE,
    POSITIVE,
    RAVDESS_SPLITS,
    VALENCE,
    AffectClip,
    emodb_clip,
    ravdess_clip,
    speakers_by_split,
    speech_va_clips,
    valence_of,
)
from qamoe.errors import ConfigError, DataError


def test_ravdess_names_give_emotion_intensity_statement_and_actor() -> None:
    c = ravdess_clip(Path("Actor_12/03-01-05-02-01-01-12.flac"))
    assert c is not None
    assert (c.key, c.emotion, c.label, c.speaker, c.split) == ("ravdess/03-01-05-02-01-01-12", "angry", -2.0,
                                                                  "ravdess/12", "train")  # fmt: skip
    assert c.text == "Kids are talking by the door"
    normal = ravdess_clip(Path("03-01-03-01-02-02-23.flac"))
    assert normal is not None and normal.label == pytest.approx(0.75 * 2.0) and normal.split == "test"
    assert normal.text == "Dogs are sitting by the door"
    assert ravdess_clip(Path("03-01-08-02-01-01-01.flac")) is None  # surprise: left out


@pytest.mark.parametrize("name", ["03-02-05-02-01-01-12", "03-01-09-02-01-01-12", "03-01-05-02-03-01-12",
                                  "03-01-05-02-01-01-25", "clip"])
def test_ravdess_bad_names_are_refused(name: str) -> None:
    with pytest.raises(DataError):
        ravdess_clip(Path(f"{name}.flac"))


def test_emodb_names_give_speaker_and_emotion() -> None:
    c = emodb_clip(Path("16b10Tb.flac"))
    assert (c.key, c.emotion, c.label, c.speaker, c.split) == ("emodb/16b10Tb", "sad", -2.0, "emodb/16", "test")
    assert emodb_clip(Path("03a01Fa.flac")).label == 2.0
    assert emodb_clip(Path("12a01Lb.flac")).split == "valid"
    for bad in ("04a01Fa", "03a01Xa", "03a01fa"):
        with pytest.raises(DataError):
            emodb_clip(Path(f"{bad}.flac"))


def test_the_map_puts_positive_above_neutral_above_negative() -> None:
    # calm sits at neutral (docs/CORPUS.md, "Calm at 0"): above every negative emotion, as the AUC counts it
    assert all(VALENCE[p] >= VALENCE["neutral"] > VALENCE[n] for p in POSITIVE for n in NEGATIVE)
    assert VALENCE["happy"] > VALENCE["neutral"] == VALENCE["calm"]
    assert -3.0 <= min(VALENCE.values()) and max(VALENCE.values()) <= 3.0
    with pytest.raises(ConfigError, match="surprised"):
        valence_of("surprised")


def test_no_speaker_is_in_two_splits_and_selection_never_sees_a_reported_speaker() -> None:
    for table in (RAVDESS_SPLITS, EMODB_SPLITS):
        splits = set(table.values())
        assert splits == {"train", "valid", "test"}
    clips = [AffectClip(f"k{i}", Path("x"), "d", f"s{i % 5}", "happy", 2.0, ("train", "valid", "test")[i % 3])
             for i in range(15)]
    by_split = speakers_by_split(clips)
    assert set().union(*by_split.values()) == {f"s{i}" for i in range(5)}


def test_speech_va_targets_are_three_times_the_annotation(tmp_path: Path) -> None:
    (tmp_path / "valence.csv").write_text("00.wav,-0.7\n01.wav,0.5\n", encoding="utf-8")
    clips = speech_va_clips(tmp_path)
    assert [(c.key, c.label, c.split) for c in clips] == [("speech_va/00", pytest.approx(-2.1), "test"),
                                                          ("speech_va/01", 1.5, "test")]  # fmt: skip
    (tmp_path / "valence.csv").write_text("00.wav,-1.7\n", encoding="utf-8")
    with pytest.raises(DataError, match="outside"):
        speech_va_clips(tmp_path)


def test_affect_rows_measure_the_voice_targets_from_ids_alone() -> None:
    import numpy as np

    from qamoe.corpus.affect_eval import affect_rows, emotion_of

    ids = np.array(["ravdess/03-01-03-02-01-01-21", "ravdess/03-01-02-02-01-01-21",  # happy, calm
                    "ravdess/03-01-05-02-01-01-21", "ravdess/03-01-04-02-01-01-21",  # angry, sad
                    "ravdess/03-01-01-01-01-01-21", "emodb/15a01Fa", "emodb/15a01Wa", "speech_va/00",
                    "speech_va/01"])  # fmt: skip
    assert [emotion_of(str(i)) for i in ids[:6]] == ["happy", "calm", "angry", "sad", "neutral", "happy"]
    labels = np.array([2.0, 1.0, -2.0, -2.0, 0.0, 2.0, -2.0, -1.0, 1.0], np.float32)
    valence = np.array([1.5, 0.5, -1.0, -0.5, 0.1, 0.2, 0.4, -0.3, 0.9], np.float32)
    rows = {r["dataset"]: r for r in affect_rows(ids, valence, labels)}
    rav = rows["ravdess"]
    assert rav["auc"] == 1.0 and rav["happy_minus_negative"] == pytest.approx(1.5 + 0.75)
    assert rav["neutral_abs"] == pytest.approx(0.1) and rav["met"] == {"auc": True, "happy_minus_negative": True,
                                                                        "neutral_abs": True}  # fmt: skip
    assert rows["emodb"]["auc"] == 0.0 and not rows["emodb"]["met"]["auc"]  # happy below angry
    assert rows["speech_va"]["spearman"] == pytest.approx(1.0)


def test_affect_rows_measure_the_face_targets_from_the_label_classes() -> None:
    import numpy as np

    from qamoe.corpus.affect_eval import affect_rows

    ids = np.array([f"fer2013/Training_{i}" for i in range(6)])
    labels = np.array([2.0, 2.0, 0.0, -2.0, -1.5, 0.0], np.float32)  # happy x2, neutral x2, angry, fear
    valence = np.array([1.2, 0.4, 0.5, 0.6, -1.0, -0.3], np.float32)
    (row,) = affect_rows(ids, valence, labels)
    assert row["dataset"] == "fer2013" and row["n"] == 6
    assert row["auc"] == pytest.approx(0.75)  # 1.2 beats both negatives, 0.4 beats one
    assert row["happy_mean"] == pytest.approx(0.8) and row["neutral_abs"] == pytest.approx(0.1)
    assert row["met"] == {"auc": False, "happy_mean": False, "neutral_abs": True}


def test_another_valence_map_relabels_from_the_clip_names_alone() -> None:
    from qamoe.corpus.affect import parse_valence_overrides, relabel

    ids = np.array(["ravdess/03-01-02-02-01-01-03", "ravdess/03-01-02-01-01-01-03", "ravdess/03-01-03-02-01-01-03",
                    "emodb/03a01Nc", "emodb/03a01Fa", "speech_va/clip7"])
    labels = np.array([1.0, 0.75, 2.0, 0.0, 2.0, 1.2], np.float32)
    overrides = parse_valence_overrides(["calm=0.5", "neutral=-0.25"])
    assert overrides == {"calm": 0.5, "neutral": -0.25}
    new = relabel(ids, labels, overrides)
    # strong calm, normal calm (x 0.75), happy, EmoDB neutral, EmoDB happy, a continuous clip (kept)
    assert new.tolist() == pytest.approx([0.5, 0.375, VALENCE["happy"], -0.25, VALENCE["happy"], 1.2])
    # the labels given play no part for categorical clips: shuffled, they come out the same
    assert relabel(ids, labels[::-1], overrides)[:5].tolist() == pytest.approx(new[:5].tolist())
    # without overrides: the current map, whatever the corpus was built with (here: stale labels of 9)
    assert relabel(ids[:1], np.array([9.0], np.float32)).tolist() == pytest.approx([VALENCE["calm"]])
    for bad in (["calm"], ["joy=1"], ["calm=4"], ["calm=x"]):
        with pytest.raises(ConfigError, match="EMOTION=VALUE"):
            parse_valence_overrides(bad)


def test_lead_in_is_silence_before_the_clip_and_bad_values_are_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    from qamoe.corpus.affect_build import MicContext

    pcm = np.linspace(-0.5, 0.5, 1600, dtype=np.float32)
    mic = MicContext(lead_in_s=0.25)
    led = mic.apply(pcm, "ravdess/03-01-03-01-01-01-01")
    assert led.dtype == np.float32 and led.shape == (4000 + 1600,)
    assert not led[:4000].any() and np.array_equal(led[4000:], pcm)
    assert mic.options() == {"lead_in_s": 0.25} and MicContext().options() == {}  # old folders resume
    tool = Path(__file__).resolve().parents[2] / "tools" / "build_affect_corpus.py"
    for bad in (["--lead-in", "-1"], ["--noise-floor=-40:-70"], ["--noise-floor", "loud"],
                ["--speech-level=-10:-50"], ["--speech-level", "0"], ["--splits", "dev"]):
        run = subprocess.run([sys.executable, str(tool), "--affect", str(tmp_path), "--out", str(tmp_path / "out"),
                              *bad], capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert run.returncode == 2, run.stderr
        assert f"{bad[0].split('=')[0]} " in run.stderr and "Traceback" not in run.stderr
        assert not (tmp_path / "out").exists()  # nothing half-written


def test_noise_floor_level_comes_from_the_clip_id_never_its_label() -> None:
    from qamoe.corpus.affect_build import MicContext

    mic = MicContext(lead_in_s=1.0, noise_floor_dbfs=(-80.0, -50.0))
    keys = [f"emodb/03a01{e}a" for e in "FWLETAN"] + [f"ravdess/03-01-0{i}-01-01-01-01" for i in range(1, 9)]
    levels = [mic.level_dbfs(k) for k in keys]
    assert all(lv is not None and -80 <= lv <= -50 for lv in levels) and len(set(levels)) == len(keys)
    pcm = np.zeros(32000, np.float32)
    a, b = mic.apply(pcm, keys[0]), mic.apply(pcm, keys[0])
    assert np.array_equal(a, b) and a.shape == (48000,)  # seeded by the id: the same input on every build
    rms_db = 20 * np.log10(np.sqrt(np.mean(a.astype(np.float64) ** 2)))
    assert abs(rms_db - levels[0]) < 0.2
    assert not np.array_equal(a, mic.apply(pcm, keys[1]))
    fixed = MicContext(noise_floor_dbfs=(-60.0, -60.0))
    assert fixed.level_dbfs(keys[3]) == -60.0 and fixed.options() == {"noise_floor_dbfs": [-60.0, -60.0]}


def test_speech_level_is_drawn_from_the_clip_id_and_sets_the_loud_frames_there() -> None:
    from qamoe.corpus.affect_build import MicContext, speech_level

    t = np.arange(48000) / 16000
    speech = (0.01 * np.sin(2 * np.pi * 200 * t) * (t > 1.0)).astype(np.float32)  # 1 s of silence, then a tone
    assert abs(speech_level(speech) - 20 * np.log10(0.01 / np.sqrt(2))) < 0.1  # the loud frames, not the silence
    assert speech_level(np.zeros(100, np.float32)) == -120.0 and speech_level(np.zeros(0, np.float32)) == -120.0
    mic = MicContext(lead_in_s=0.5, speech_level_dbfs=(-50.0, -10.0))
    keys = [f"emodb/03a01{e}a" for e in "FWLETAN"] + [f"ravdess/03-01-0{i}-01-01-01-01" for i in range(1, 9)]
    targets = [mic.speech_dbfs(k) for k in keys]  # from the id alone: the same for any label of the clip
    assert all(v is not None and -50 <= v <= -10 for v in targets) and len(set(targets)) == len(keys)
    for key, target in zip(keys[:4], targets[:4], strict=True):
        out = mic.apply(speech, key)
        assert out.dtype == np.float32 and out.shape == (8000 + 48000,) and not out[:8000].any()
        assert abs(speech_level(out[8000:]) - target) < 0.05
        assert np.array_equal(out, mic.apply(speech, key))
    hot = MicContext(speech_level_dbfs=(-3.0, -3.0)).apply(speech * 0 + np.float32(0.5), keys[0])
    assert np.abs(hot).max() <= 1.0  # a gain past full scale clips, as a converter does
    assert mic.options() == {"lead_in_s": 0.5, "speech_level_dbfs": [-50.0, -10.0]}
    assert MicContext(noise_floor_dbfs=(-80.0, -50.0)).speech_dbfs(keys[0]) is None
    # the speech level and the noise floor are drawn apart: the same clip gets unrelated levels
    both = MicContext(noise_floor_dbfs=(-50.0, -10.0), speech_level_dbfs=(-50.0, -10.0))
    assert [both.level_dbfs(k) for k in keys] != [both.speech_dbfs(k) for k in keys]


def test_in_progress_window_end_is_drawn_from_the_clip_id_and_bad_ranges_are_refused() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from qamoe.corpus.affect_build import cut_fraction
    from tools.build_affect_corpus import parse_cut

    keys = [f"ravdess/03-01-0{i}-01-01-01-01" for i in range(1, 9)]
    cuts = [cut_fraction((0.3, 0.9), k) for k in keys]
    assert all(0.3 <= c <= 0.9 for c in cuts) and len(set(cuts)) == len(keys)
    assert cuts == [cut_fraction((0.3, 0.9), k) for k in keys]  # the id alone decides, never the label
    assert parse_cut(None) is None and parse_cut("0.3:0.9") == (0.3, 0.9)
    for bad in ("0:0.5", "0.5:1", "0.9:0.3", "half", "0.5"):
        with pytest.raises(ConfigError, match="--cut"):
            parse_cut(bad)
