"""The sentence a GRID corpus file name encodes (command colour preposition letter digit adverb), the reference
transcript of the GRID clips in ../shared/media/grid for tests and benchmarks."""

from __future__ import annotations

import re
from pathlib import Path

from edge.asr.wer import DIGITS

COMMANDS = {"b": "bin", "l": "lay", "p": "place", "s": "set"}
COLOURS = {"b": "blue", "g": "green", "r": "red", "w": "white"}
PREPOSITIONS = {"a": "at", "b": "by", "i": "in", "w": "with"}
ADVERBS = {"a": "again", "n": "now", "p": "please", "s": "soon"}


def grid_sentence(path: Path) -> list[str]:
    """The six words a GRID file name encodes: `id2_vcd_swwp2s.mpg` -> set white with p two soon."""
    code = path.stem.split("_")[-1]
    if not re.fullmatch(r"[blps][bgrw][abiw][a-z][0-9z][anps]", code):
        raise ValueError(f"{path.name} is not a GRID sentence code")
    digit = DIGITS[0] if code[4] == "z" else DIGITS[int(code[4])]
    return [COMMANDS[code[0]], COLOURS[code[1]], PREPOSITIONS[code[2]], code[3], digit, ADVERBS[code[5]]]
