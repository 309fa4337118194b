"""Real emotional speech as labelled clips: RAVDESS, EmoDB and the 47 clips of continuous valence (speech_va).

Reads `<affect>/` as `../shared/data/affect/README.md` lays it out (16 kHz mono FLAC) and gives every clip its
speaker, its emotion, a valence target on the corpus's label scale ([-3, 3], MOSI/MOSEI's) and a split by
speaker. Nothing here reads audio: `qamoe.corpus.affect_build` takes the clips through the live extractors.

The emotion -> valence map (docs/CORPUS.md, "Real emotional speech", gives the reasons):

  emotion      happy  calm  neutral  boredom  sad   fearful  angry  disgust  surprised
  valence      +2.0    0.0   0.0     -0.5     -2.0  -1.5     -2.0   -2.0     (left out)

after the circumplex placements of Russell (1980) (happy above the midpoint, neutral at it, the four negative
emotions below it, boredom slightly below). Calm is at the midpoint, not above it (+1.0 until 2026-12-06): as a
target, calm's mild pleasantness taught the voice path "low arousal means positive", and RAVDESS's neutral and
sad voices read positive; measured against +1.0 and +0.5 in docs/results/affect/summary.md ("Calm"). Calm
still counts on the positive side of the issue's AUC (POSITIVE). RAVDESS's validation study rated each
recording's emotional category, intensity and genuineness, not its valence, so it gives no valence to map onto.
Surprise is left out: its valence depends on its cause and the recordings do not say it. RAVDESS's "normal"
intensity scales the target by 0.75 ("strong": 1.0), a milder expression of the same emotion; EmoDB has no
intensity. The 47 speech_va clips carry annotated valence in [-1, 1]: target = 3 x valence; they are report
only (split `test`), never trained on.

Splits by speaker, never by clip (the same voice on both sides measures memorised voices, not affect):
  RAVDESS  train actors 1-18, valid 19-20, test 21-24 (each pair one male, one female)
  EmoDB    train speakers 03 08 09 10 11 14, valid 12 13, test 15 16 (each pair one male, one female)
  speech_va  test (no speaker identities; report only)
Selection (the valid split) and reporting (test) never see the same speaker, nor any speaker of train.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qamoe.errors import ConfigError, DataError

DATASETS = ("ravdess", "emodb", "speech_va")
VALENCE = {
    "happy": 2.0, "calm": 0.0, "neutral": 0.0, "boredom": -0.5,
    "sad": -2.0, "fearful": -1.5, "angry": -2.0, "disgust": -2.0,
}  # fmt: skip
LEFT_OUT = ("surprised",)
NORMAL_INTENSITY_SCALE = 0.75
SPEECH_VA_SCALE = 3.0
POSITIVE = ("happy", "calm")  # the AUC: happy or calm vs the four negative emotions
NEGATIVE = ("angry", "sad", "fearful", "disgust")

RAVDESS_EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}  # fmt: skip
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
RAVDESS_SPLITS = {**{a: "train" for a in range(1, 19)}, 19: "valid", 20: "valid", 21: "test", 22: "test",
                  23: "test", 24: "test"}  # fmt: skip
EMODB_EMOTIONS = {
    "W": "angry", "L": "boredom", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral",
}  # fmt: skip
EMODB_SPLITS = {**{s: "train" for s in ("03", "08", "09", "10", "11", "14")}, "12": "valid", "13": "valid",
                "15": "test", "16": "test"}  # fmt: skip

_RAVDESS_NAME = re.compile(r"03-01-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")
_EMODB_NAME = re.compile(r"(\d\d)([a-z]\d\d)([A-Z])([a-z])")


@dataclass(frozen=True)
class AffectClip:
    key: str  # dataset-prefixed id, e.g. "ravdess/03-01-05-02-01-01-12"
    path: Path
    dataset: str
    speaker: str  # dataset-prefixed, e.g. "ravdess/12" ("" where unknown)
    emotion: str  # one of VALENCE's keys ("" for the continuous clips)
    label: float  # the valence target on [-3, 3]
    split: str  # train | valid | test
    text: str = ""  # the sentence spoken where the corpus says it (RAVDESS), for transcript checks only


def valence_of(emotion: str, *, strong: bool = True) -> float:
    """The valence target of a categorical emotion (see the module docstring); ConfigError for one left out."""
    if emotion not in VALENCE:
        raise ConfigError(f"emotion {emotion!r} has no valence in the map (left out: {', '.join(LEFT_OUT)})")
    return VALENCE[emotion] * (1.0 if strong else NORMAL_INTENSITY_SCALE)


def parse_valence_overrides(items: Iterable[str]) -> dict[str, float]:
    """`EMOTION=VALUE` strings (e.g. "calm=0.5") -> {emotion: strong-intensity valence}, for trying another map
    on a built corpus (`relabel`); ConfigError for an unknown emotion or a value outside [-3, 3]."""
    out = {}
    for item in items:
        emotion, sep, value = item.partition("=")
        try:
            v = float(value)
        except ValueError:
            v = float("nan")
        if not sep or emotion not in VALENCE or not -3.0 <= v <= 3.0:
            raise ConfigError(f"--valence {item!r}: write EMOTION=VALUE, EMOTION one of {', '.join(VALENCE)}, "
                              f"VALUE in [-3, 3] (e.g. calm=0.5)")
        out[emotion] = v
    return out


def emotion_and_intensity(key: str) -> tuple[str, bool]:
    """The emotion a clip id names and whether at strong intensity (RAVDESS's "02"; EmoDB's always); ("",
    True) for the continuous clips and ids of no corpus; DataError for a malformed RAVDESS or EmoDB name."""
    dataset, _, stem = key.partition("/")
    if dataset == "ravdess":
        m = _RAVDESS_NAME.fullmatch(stem)
        if m is None or m.group(1) not in RAVDESS_EMOTIONS:
            raise DataError(f"{key} is not a RAVDESS speech clip id (ravdess/03-01-EE-II-SS-RR-AA)")
        return RAVDESS_EMOTIONS[m.group(1)], m.group(2) == "02"
    if dataset == "emodb":
        return emodb_clip(Path(f"{stem}.wav")).emotion, True
    return "", True


def relabel(ids: Iterable[str], labels: np.ndarray, overrides: dict[str, float] | None = None) -> np.ndarray:
    """The labels of a built affect corpus's rows (`ids`: their clip keys) under this module's map (VALENCE)
    with `overrides` applied: every RAVDESS and EmoDB row gets its emotion's valence (scaled for RAVDESS's
    normal intensity as the build does), from the clip's own name alone (never its label); rows of continuous
    annotation (speech_va) keep theirs. A corpus built under an earlier map thus trains under the current one."""
    valence = {**VALENCE, **(overrides or {})}
    out = np.array(labels, np.float32, copy=True)
    for i, key in enumerate(ids):
        emotion, strong = emotion_and_intensity(str(key))
        if emotion in valence:
            out[i] = valence[emotion] * (1.0 if strong else NORMAL_INTENSITY_SCALE)
    return out


def ravdess_clip(path: Path) -> AffectClip | None:
    """One RAVDESS speech file (`03-01-EE-II-SS-RR-AA`), None for surprise (left out); DataError for a name
    that is not one."""
    m = _RAVDESS_NAME.fullmatch(path.stem)
    if m is None or m.group(1) not in RAVDESS_EMOTIONS or m.group(3) not in RAVDESS_STATEMENTS:
        raise DataError(f"{path.name} is not a RAVDESS speech file name (03-01-EE-II-SS-RR-AA)")
    emotion, intensity, statement, actor = RAVDESS_EMOTIONS[m.group(1)], m.group(2), m.group(3), int(m.group(5))
    if emotion in LEFT_OUT:
        return None
    if actor not in RAVDESS_SPLITS:
        raise DataError(f"{path.name}: actor {actor} is not one of RAVDESS's 24")
    return AffectClip(f"ravdess/{path.stem}", path, "ravdess", f"ravdess/{actor:02d}", emotion,
                      valence_of(emotion, strong=intensity == "02"), RAVDESS_SPLITS[actor],
                      RAVDESS_STATEMENTS[statement])  # fmt: skip


def emodb_clip(path: Path) -> AffectClip:
    """One EmoDB file (`SSTTTEV`: speaker, text id, emotion letter, version)."""
    m = _EMODB_NAME.fullmatch(path.stem)
    if m is None or m.group(3) not in EMODB_EMOTIONS or m.group(1) not in EMODB_SPLITS:
        raise DataError(f"{path.name} is not an EmoDB file name (SSTTTEV, e.g. 03a01Fa)")
    speaker, emotion = m.group(1), EMODB_EMOTIONS[m.group(3)]
    return AffectClip(f"emodb/{path.stem}", path, "emodb", f"emodb/{speaker}", emotion, valence_of(emotion),
                      EMODB_SPLITS[speaker])  # fmt: skip


def speech_va_clips(folder: Path) -> list[AffectClip]:
    """The continuous-valence clips of `folder/valence.csv` (`file.wav,value`; audio stored as .flac)."""
    table = folder / "valence.csv"
    try:
        with table.open(newline="", encoding="utf-8") as f:
            rows = [(name, float(value)) for name, value in csv.reader(f) if name]
    except (OSError, ValueError, csv.Error) as e:
        raise DataError(f"cannot read {table} ({e}): pass --affect, the folder of ../shared/data/affect") from None
    clips = []
    for name, value in rows:
        if not -1.0 <= value <= 1.0:
            raise DataError(f"{table}: {name} has valence {value}, outside [-1, 1]")
        path = folder / f"{Path(name).stem}.flac"
        clips.append(AffectClip(f"speech_va/{Path(name).stem}", path, "speech_va", "", "",
                                SPEECH_VA_SCALE * value, "test"))  # fmt: skip
    return clips


def read_clips(affect: Path, datasets: Iterable[str] = DATASETS) -> list[AffectClip]:
    """Every usable clip of the chosen datasets under `affect`, in a stable order (dataset, then file name)."""
    wanted = list(datasets)
    unknown = sorted(set(wanted) - set(DATASETS))
    if unknown:
        raise ConfigError(f"--affect-datasets {','.join(unknown)}: choose from {','.join(DATASETS)}")
    clips: list[AffectClip] = []
    for name in wanted:
        folder = affect / name
        if not folder.is_dir():
            raise DataError(f"{folder} not found: pass --affect, the folder of ../shared/data/affect")
        if name == "ravdess":
            found = [ravdess_clip(p) for p in sorted(folder.glob("Actor_*/*.flac"))]
            clips += [c for c in found if c is not None]
        elif name == "emodb":
            clips += [emodb_clip(p) for p in sorted(folder.glob("*.flac"))]
        else:
            clips += speech_va_clips(folder)
    missing = [c.path for c in clips if not c.path.is_file()]
    if missing:
        raise DataError(f"{len(missing)} clip(s) listed but not found, e.g. {missing[0]}")
    return clips


def speakers_by_split(clips: Iterable[AffectClip]) -> dict[str, set[str]]:
    """split -> the speakers in it (tests check that no speaker is in two splits)."""
    out: dict[str, set[str]] = {}
    for c in clips:
        if c.speaker:
            out.setdefault(c.split, set()).add(c.speaker)
    return out
