"""The live feature spec: what the extractors produce and the model consumes, versioned and checked.

Written into `engines/manifest.json` (section "feature_spec") by the build, stored in every feature shard and
checkpoint, and compared at load time by the runtime and the training tools: a mismatch is a clear error, never
a silent reinterpretation of columns.

Window geometry (defaults, justified in docs/FEATURES.md):
  window_s = 4.0   long enough for a clause of speech (MOSI/MOSEI segments last ~4-7 s) and a facial display
  hop_s    = 0.5   a new estimate twice a second, well under the 1 s the product promises

Streams (each step holds `columns`; steps without data are masked, never dropped):
  text    token-level: the last `max_steps` MiniLM contextual token embeddings of the words heard within
          `context_s` before the window's end, plus ASR confidence columns per token
  audio   25 Hz model frames (40 ms), `max_steps` = window_s * 25, MFCC / prosody / signal-quality columns
  vision  10 Hz face samples, `max_steps` = window_s * 10, face geometry / expression / embedding / image quality
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.errors import ModelFault
from edge.vocab import MODALITIES as STREAMS

FEATURE_SPEC_FORMAT = "qamoe-feature-spec"
FEATURE_SPEC_VERSION = 1


class FeatureSpecError(ModelFault, ValueError):
    """A feature spec is malformed, or does not match the one it must match. The message names the fix. A
    model trained on another spec is a model problem (exit 4)."""


@dataclass(frozen=True)
class StreamSpec:
    """One modality's steps: `rate_hz` steps per second (None: event-driven, e.g. text tokens), at most
    `max_steps` per window, each a vector of `columns` (names, in order)."""

    name: str
    rate_hz: float | None
    max_steps: int
    columns: tuple[str, ...]
    context_s: float | None = None

    def __post_init__(self) -> None:
        if self.name not in STREAMS:
            raise FeatureSpecError(f"unknown stream {self.name!r}: use one of {STREAMS}")
        if self.max_steps <= 0 or not self.columns:
            raise FeatureSpecError(f"{self.name}: max_steps and columns must be non-empty")
        if len(set(self.columns)) != len(self.columns):
            raise FeatureSpecError(f"{self.name}: duplicate column names")
        object.__setattr__(self, "columns", tuple(self.columns))

    @property
    def dim(self) -> int:
        return len(self.columns)

    def required_rate_hz(self) -> float:
        """`rate_hz`, for a use that needs steps per second (the live windows of audio and vision)."""
        if self.rate_hz is None:
            raise FeatureSpecError(f"{self.name}: rate_hz is None, but a timed stream needs steps per second")
        return self.rate_hz

    def required_context_s(self) -> float:
        """`context_s`, for a use that needs it (the live window's text context)."""
        if self.context_s is None:
            raise FeatureSpecError(f"{self.name}: context_s is None, but the live window needs a context")
        return self.context_s


@dataclass(frozen=True)
class FeatureSpec:
    window_s: float
    hop_s: float
    text: StreamSpec
    audio: StreamSpec
    vision: StreamSpec
    version: int = FEATURE_SPEC_VERSION

    def __post_init__(self) -> None:
        if not 0 < self.hop_s <= self.window_s:
            raise FeatureSpecError(
                f"need 0 < hop_s <= window_s, got hop {self.hop_s}, window {self.window_s}"
            )

    def stream(self, name: str) -> StreamSpec:
        if name not in STREAMS:
            raise FeatureSpecError(f"unknown stream {name!r}: use one of {STREAMS}")
        return getattr(self, name)

    @property
    def dims(self) -> dict[str, int]:
        return {s: self.stream(s).dim for s in STREAMS}

    @property
    def voice_encoder(self) -> bool:
        """Whether the audio stream carries the voice encoder's columns (AudioFeatureConfig.voice_encoder)."""
        return any(c.startswith("wenc_") for c in self.audio.columns)

    @property
    def seq_lens(self) -> dict[str, int]:
        return {s: self.stream(s).max_steps for s in STREAMS}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for s in STREAMS:
            d[s]["columns"] = list(d[s]["columns"])
        return {"format": FEATURE_SPEC_FORMAT, **d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSpec:
        if d.get("format") != FEATURE_SPEC_FORMAT:
            raise FeatureSpecError(f"not a {FEATURE_SPEC_FORMAT} (format={d.get('format')!r})")
        if int(d.get("version", 0)) > FEATURE_SPEC_VERSION:
            raise FeatureSpecError(
                f"feature spec version {d.get('version')} is newer than this qamoe-live ({FEATURE_SPEC_VERSION}):"
                " upgrade qamoe-live"
            )
        body = {k: v for k, v in d.items() if k != "format"}
        try:
            # Any: a dict's keys cannot be matched to the keyword parameters they fill
            streams: dict[str, Any] = {s: StreamSpec(**body.pop(s)) for s in STREAMS}
            return cls(**body, **streams)
        except (KeyError, TypeError) as e:
            raise FeatureSpecError(f"malformed feature spec: {e}") from None

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON: a short identity for logs, manifests and checkpoints."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def check_matches(self, other: FeatureSpec, *, what: str = "model") -> None:
        """Raise FeatureSpecError naming every difference between this (the data's) spec and `other`'s."""
        if self.digest == other.digest:
            return
        a, b = self.to_dict(), other.to_dict()
        diffs = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        detail = []
        for k in diffs:
            if k in STREAMS:
                sub = [f for f in a[k] if a[k][f] != b[k].get(f)]
                detail.append(f"{k}.{'/'.join(sub)}")
            else:
                detail.append(k)
        raise FeatureSpecError(
            f"feature spec mismatch with the {what} ({', '.join(detail)}): re-extract the features with this"
            " qamoe-live, or use a model built for this feature spec"
        )


# Text defaults: the last 48 tokens heard within 8 s before the window's end (a clause or two of speech; MOSI
# and MOSEI utterances have a median of ~15-25 tokens). Audio and vision cover exactly the window.
DEFAULT_WINDOW_S = 4.0
DEFAULT_HOP_S = 0.5
AUDIO_RATE_HZ = 25.0
VISION_RATE_HZ = 10.0
TEXT_MAX_TOKENS = 48
TEXT_CONTEXT_S = 8.0


def default_feature_spec(
    window_s: float = DEFAULT_WINDOW_S, hop_s: float = DEFAULT_HOP_S, *, voice_encoder: bool = False
) -> FeatureSpec:
    """The spec of the extractors as configured by default (column names come from the extractors).
    voice_encoder: the audio stream also carries the Whisper encoder columns (AudioFeatureConfig.voice_encoder;
    not the default yet)."""
    from edge.features.audio_config import AudioFeatureConfig
    from edge.features.text import TEXT_COLUMNS
    from edge.features.visual import VISION_COLUMNS

    def frames(rate: float) -> int:
        n = window_s * rate
        if abs(n - round(n)) > 1e-9:
            raise FeatureSpecError(f"window_s={window_s} is not a whole number of {rate} Hz frames")
        return round(n)

    return FeatureSpec(
        window_s=window_s,
        hop_s=hop_s,
        text=StreamSpec("text", None, TEXT_MAX_TOKENS, TEXT_COLUMNS, context_s=TEXT_CONTEXT_S),
        audio=StreamSpec(
            "audio",
            AUDIO_RATE_HZ,
            frames(AUDIO_RATE_HZ),
            AudioFeatureConfig(voice_encoder=voice_encoder).names,
        ),
        vision=StreamSpec("vision", VISION_RATE_HZ, frames(VISION_RATE_HZ), VISION_COLUMNS),
    )


def extractor_specs(
    window_s: float = DEFAULT_WINDOW_S, hop_s: float = DEFAULT_HOP_S
) -> tuple[FeatureSpec, ...]:
    """Every spec these extractors can produce for one window geometry: the default first, then the one with
    the voice encoder's columns (a model trained on either runs; edge.pipeline.build picks by the manifest)."""
    return tuple(default_feature_spec(window_s, hop_s, voice_encoder=v) for v in (False, True))


def extractor_spec_for(
    digest: str, window_s: float = DEFAULT_WINDOW_S, hop_s: float = DEFAULT_HOP_S
) -> FeatureSpec | None:
    """The spec of `extractor_specs` whose digest is `digest`, or None when these extractors make no such spec."""
    return next((s for s in extractor_specs(window_s, hop_s) if s.digest == digest), None)
