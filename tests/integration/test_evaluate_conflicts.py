"""tools/evaluate_conflicts.py end to end on a few FER2013 photos: one muxed stream (held photos, a spoken
sentence over each) replayed by real `qamoe-live` processes; each photo is read from the window ending with it,
which carries its own sentence; bad options and missing data exit in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qamoe.corpus.conflicts import SENTENCES

pytestmark = pytest.mark.shared
REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "evaluate_conflicts.py"


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), "--engines", str(REPO / "engines"), *args], check=False,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.mark.slow
def test_each_photo_is_read_with_its_own_sentence(shared_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "conflicts.json"
    r = _run("--affect", str(shared_dir / "data" / "affect"), "--limit", "4", "--modes", "both,voice + words",
             "--json", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "both:" in r.stdout and "voice + words:" in r.stdout
    photos = json.loads(out.read_text(encoding="utf-8"))["photos"]
    assert len(photos) == 4
    said = dict(SENTENCES)
    for p in photos:
        heard = p["voice + words"]["transcript"].lower()
        # the window holds this photo's sentence (the live ASR's words of it), never the previous photo's
        key_word = {"positive": "love", "negative": "hate", "neutral": "table"}[p["words"]]
        others = {"love", "hate", "table"} - {key_word}
        assert key_word in heard or not heard.strip(), (said[p["words"]], heard)
        assert not any(w in heard for w in others), (said[p["words"]], heard)
        assert p["both"]["valence"] is not None


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--hold", "6"], 2, "previous photo's sentence"),
    (["--modes", "sideways"], 2, "--modes"),
    (["--limit", "0"], 2, "--limit"),
])  # fmt: skip
def test_bad_options_exit_2_in_one_line(shared_dir: Path, args: list[str], code: int, words: str) -> None:
    r = _run("--affect", str(shared_dir / "data" / "affect"), *args, timeout=120)
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr and words in r.stderr


def test_missing_data_exits_3(tmp_path: Path) -> None:
    r = _run("--affect", str(tmp_path), timeout=120)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr and "fer2013_train.npz" in r.stderr
