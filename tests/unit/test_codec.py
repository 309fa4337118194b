"""The recording chain of the affect corpora (qamoe.corpus.codec): a real FFmpeg encode and decode per clip,
drawn from the clip's key alone."""

from __future__ import annotations

import numpy as np
import pytest

from qamoe.corpus.codec import (
    BIT_RATES,
    CODECS,
    RATES,
    Chain,
    CodecError,
    draw_chain,
    parse_codecs,
    roundtrip,
)
from qamoe.errors import ConfigError

RATE = 16000


def _voice_like(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """Harmonics of a gliding 120-180 Hz fundamental under a syllable-rate envelope, plus a little noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 150 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    noise = np.random.default_rng(seed).normal(0, 0.02, t.size)
    return (0.15 * tone * envelope + noise).astype(np.float32)


def _aligned_corr(x: np.ndarray, y: np.ndarray, max_lag: int = 1200) -> tuple[float, int]:
    """The best correlation of y against x over lags 0..max_lag (a codec only delays), and that lag."""
    lo, hi = max_lag, x.size - max_lag
    best = max(range(max_lag + 1), key=lambda lag: float(np.dot(x[lo:hi], y[lo + lag : hi + lag])))
    return float(np.corrcoef(x[lo:hi], y[lo + best : hi + best])[0, 1]), best


@pytest.mark.parametrize("codec", CODECS)
def test_each_codec_returns_the_clip_changed_a_little_same_length(codec: str) -> None:
    pcm = _voice_like()
    chain = Chain(codec, RATES[codec][1], BIT_RATES[codec][0])  # 44.1 kHz, its lowest bit rate
    out = roundtrip(pcm, chain)
    assert out.dtype == np.float32 and out.shape == pcm.shape and np.isfinite(out).all()
    corr, lag = _aligned_corr(pcm, out)
    assert corr > 0.95, (chain.name, corr, lag)
    assert lag <= 800, (chain.name, lag)  # at most a codec's priming delay (50 ms)
    assert not np.allclose(out[lag:], pcm[: pcm.size - lag], atol=1e-4), f"{chain.name} changed nothing"
    assert np.array_equal(out, roundtrip(pcm, chain)), "the same clip through the same chain must not vary"


def test_the_chain_comes_from_the_key_alone_and_covers_the_table() -> None:
    keys = [f"ravdess/03-01-0{e}-01-01-01-{a:02d}" for e in range(1, 9) for a in range(1, 25)]
    chains = [draw_chain(k, CODECS) for k in keys]
    assert chains == [draw_chain(k, CODECS) for k in keys]
    assert {c.codec for c in chains} == set(CODECS)
    for c in chains:
        assert c.rate in RATES[c.codec] and c.bit_rate in BIT_RATES[c.codec]
    assert {draw_chain(k, ("mp3",)).codec for k in keys} == {"mp3"}
    assert len({(c.rate, c.bit_rate) for c in chains if c.codec == "mp2"}) > 3


def test_unknown_or_empty_codecs_are_config_errors_that_name_the_choices() -> None:
    assert parse_codecs("mp2, aac") == ("mp2", "aac")
    for bad in ("flac", "mp2,ogg", " , "):
        with pytest.raises(CodecError, match="mp2, mp3, aac"):
            parse_codecs(bad)
    assert issubclass(CodecError, ConfigError)  # exit code 2 through the tools' run_tool
    with pytest.raises(CodecError):
        Chain("opus", 48000, 64000)


def test_mic_context_sends_each_clip_through_its_drawn_codec() -> None:
    from qamoe.corpus.affect_build import MicContext

    pcm = _voice_like(1.0)
    key = "emodb/03a01Fa"
    mic = MicContext(lead_in_s=0.5, codecs=("mp2", "aac"))
    out = mic.apply(pcm, key)
    assert out.shape == (pcm.size + RATE // 2,)
    assert np.array_equal(out[: RATE // 2], np.zeros(RATE // 2, np.float32))  # the lead-in stays silence
    assert np.array_equal(out[RATE // 2 :], roundtrip(pcm, draw_chain(key, ("mp2", "aac"))))
    assert mic.codec(key) == draw_chain(key, ("mp2", "aac")).name and MicContext().codec(key) is None
    assert mic.options() == {"lead_in_s": 0.5, "codecs": ["mp2", "aac"]} and mic.changes_audio
    with pytest.raises(ConfigError, match="mp2, mp3, aac"):
        MicContext(codecs=("wav",))
