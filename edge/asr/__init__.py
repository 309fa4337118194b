"""Speech recognition for the live runtime: faster-whisper (CTranslate2, no torch) behind a small API.

`Transcriber(AsrConfig()).transcribe(pcm_16k, t0_ns) -> list[Word]`; `load_audio_16k(path)` for recorded
media. faster-whisper and PyAV are imported only when a `Transcriber` is built or a file is decoded.
"""

from edge.asr.audio_file import load_audio_16k
from edge.asr.transcriber import (
    SAMPLE_RATE,
    AsrConfig,
    AsrConfigError,
    AsrError,
    AsrInputError,
    AsrModelError,
    Transcriber,
    resolve_model_dir,
)
from edge.asr.words import Word, WordError, words_text

__all__ = [
    "SAMPLE_RATE",
    "AsrConfig",
    "AsrConfigError",
    "AsrError",
    "AsrInputError",
    "AsrModelError",
    "Transcriber",
    "Word",
    "WordError",
    "load_audio_16k",
    "resolve_model_dir",
    "words_text",
]
