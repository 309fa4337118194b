"""A recording chain between the speaker and the file: a lossy codec at another sample rate (issue 15: build for
other microphones and recordings, not for the studio these actors spoke in).

A clip of the affect corpora is 16 kHz mono PCM from a studio. A file a user plays, or a video's sound track,
has usually been through a lossy codec at 44.1 or 48 kHz first (GRID: MPEG-1 Layer II, 44.1 kHz, 224 kb/s).
`roundtrip` sends a 16 kHz clip through one such chain with FFmpeg (PyAV, the library the runtime decodes files
with): resampled to the chain's rate, encoded, decoded, and read back as `edge.asr.load_audio_16k` reads a file
(mono, 16 kHz, float32). `draw_chain` picks the chain of a clip from a hash of its key, never from its label:

    codec ~ the given codecs, uniform;  rate, bit rate ~ that codec's table, uniform   (sha256(key + "/codec"))

  codec  container  sample rates (Hz)        bit rates (kb/s)
  mp2    mp2        32000, 44100, 48000      128, 192, 224
  mp3    mp3        22050, 44100, 48000      64, 96, 128
  aac    adts       22050, 44100, 48000      64, 96, 128

The decoded clip is trimmed or zero-padded to the input's length. The codec's own delay stays, as in a real
file: MP3 streams say how many priming samples to drop and the decoder drops them; MP2 and ADTS do not, so the
clip comes back 15-20 ms (mp2) or 26-46 ms (aac) later, measured on a test tone.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from edge.pyav import mono_resampler
from edge.vocab import SAMPLE_RATE
from qamoe.errors import ConfigError

CONTAINER = {"mp2": "mp2", "mp3": "mp3", "aac": "adts"}
ENCODER = {"mp2": "mp2", "mp3": "libmp3lame", "aac": "aac"}
RATES = {"mp2": (32000, 44100, 48000), "mp3": (22050, 44100, 48000), "aac": (22050, 44100, 48000)}
BIT_RATES = {"mp2": (128_000, 192_000, 224_000), "mp3": (64_000, 96_000, 128_000), "aac": (64_000, 96_000, 128_000)}
CODECS = tuple(CONTAINER)


class CodecError(ConfigError):
    """A codec that is not in the table, or one this FFmpeg build cannot encode."""


@dataclass(frozen=True)
class Chain:
    """One recording chain: `codec` (a key of CONTAINER) at `rate` Hz and `bit_rate` bits/s."""

    codec: str
    rate: int
    bit_rate: int

    def __post_init__(self) -> None:
        if self.codec not in CONTAINER:
            raise CodecError(f"codec {self.codec!r}: use one of {', '.join(CODECS)}")

    @property
    def name(self) -> str:
        return f"{self.codec}@{self.rate}/{self.bit_rate // 1000}k"


def parse_codecs(text: str) -> tuple[str, ...]:
    """"mp2,mp3,aac" -> ("mp2", "mp3", "aac"); an unknown name is a CodecError naming the choices."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise CodecError(f"--codec {text!r}: name at least one of {', '.join(CODECS)}")
    for name in names:
        Chain(name, RATES.get(name, (0,))[0], BIT_RATES.get(name, (0,))[0])  # raises for an unknown name
    return names


def draw_chain(key: str, codecs: tuple[str, ...]) -> Chain:
    """The chain of the clip `key`: codec, rate and bit rate drawn uniformly from a hash of the key."""
    if not codecs:
        raise CodecError("draw_chain needs at least one codec")
    digest = hashlib.sha256(f"{key}/codec".encode()).digest()
    codec = codecs[digest[0] % len(codecs)]
    return Chain(codec, RATES[codec][digest[1] % len(RATES[codec])], BIT_RATES[codec][digest[2] % 3])


def roundtrip(pcm: np.ndarray, chain: Chain) -> np.ndarray:
    """`pcm` (16 kHz mono float32 in [-1, 1]) encoded with `chain` and decoded back to 16 kHz mono float32, the
    same length as `pcm`."""
    import av  # local: PyAV comes with faster-whisper; only corpus building needs it here

    pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
    buffer = io.BytesIO()
    try:
        with av.open(buffer, "w", format=CONTAINER[chain.codec]) as out:
            stream = out.add_stream(ENCODER[chain.codec], rate=chain.rate, layout="mono")
            stream.bit_rate = chain.bit_rate
            to_codec = av.AudioResampler(format=stream.codec_context.codec.audio_formats[0].name, layout="mono",
                                         rate=chain.rate)  # fmt: skip
            frame = av.AudioFrame.from_ndarray(pcm[None, :], format="flt", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            for converted in [*to_codec.resample(frame), *to_codec.resample(None)]:
                for packet in stream.encode(converted):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    except (av.error.FFmpegError, ValueError) as exc:
        raise CodecError(f"cannot encode {chain.name} with this FFmpeg build: {exc}") from exc
    buffer.seek(0)
    resampler = mono_resampler()
    chunks: list[np.ndarray] = []
    with av.open(buffer, "r", format=CONTAINER[chain.codec]) as back:
        for decoded in back.decode(audio=0):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(decoded))
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    out_pcm = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if out_pcm.size >= pcm.size:
        return np.ascontiguousarray(out_pcm[: pcm.size])
    return np.concatenate([out_pcm, np.zeros(pcm.size - out_pcm.size, np.float32)])
