"""The text extractor (`edge.features.text`): token-level MiniLM features with ASR confidence columns.

Needs the built `all-minilm-l6-v2` (+ tokenizer) with its `token_embeddings` output (`python
tools/build_engine.py`; skipped with that reason where absent). Parity of the ONNX export with
sentence-transformers is checked at build time and in tests/integration/test_assets.py; here the token outputs are checked
for consistency with the sentence output, and the extractor's step/column logic on real text.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.asr import Word
from edge.features.text import (
    ASR_COLUMNS,
    EMBED_DIM,
    TEXT_COLUMNS,
    TextConfigError,
    TextEncoder,
    TextFeatureConfig,
    TextInputError,
)
from edge.manifest import ManifestError

REPO_ROOT = Path(__file__).resolve().parents[2]
ASR = slice(EMBED_DIM, EMBED_DIM + 4)
SENTENCES = [
    "I was honestly disappointed by the second half of the film.",
    "She smiled and said it was the best day of her life!",
    "okay",
    "well I mean it's not terrible but I wouldn't watch it again, you know",
    "Le café était très bon — 東京",
]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    try:
        return TextEncoder(TextFeatureConfig())
    except ManifestError as exc:
        pytest.skip(f"all-minilm-l6-v2 is not built ({exc}): run `python tools/build_engine.py`")


def _word(text: str, prob: float, end_s: float = 0.0, logprob: float = -0.4, no_speech: float = 0.05) -> Word:
    end = round(end_s * 1e9)
    return Word(text, end - 200_000_000, end, prob, logprob, no_speech, 1.3)


def test_columns() -> None:
    from edge.features.spec import default_feature_spec

    text = default_feature_spec().text
    cfg = TextFeatureConfig()
    assert (text.columns, text.max_steps, text.context_s) == (TEXT_COLUMNS, cfg.max_steps, cfg.context_s)
    assert len(TEXT_COLUMNS) == 388 == TextFeatureConfig().dim and len(set(TEXT_COLUMNS)) == 388
    assert TEXT_COLUMNS[0] == "emb_000" and TEXT_COLUMNS[EMBED_DIM - 1] == "emb_383"
    assert TEXT_COLUMNS[EMBED_DIM:] == ASR_COLUMNS
    assert ASR_COLUMNS == ("asr_word_prob", "asr_avg_logprob", "asr_no_speech_prob", "from_asr")


@pytest.mark.parametrize("sentence", SENTENCES)
def test_mean_pooled_tokens_are_the_sentence_embedding(encoder: TextEncoder, sentence: str) -> None:
    emb = encoder.embed(sentence)
    pooled = emb.hidden.mean(axis=0)  # sentence-transformers pools every attended position, [CLS]/[SEP] too
    np.testing.assert_allclose(pooled / np.linalg.norm(pooled), emb.sentence, atol=1e-5, rtol=0)
    assert emb.tokens.shape == (emb.hidden.shape[0] - 2, EMBED_DIM)  # features drop [CLS] and [SEP]
    values, mask = encoder.encode_text(sentence)
    n = min(emb.tokens.shape[0], 48)
    assert mask.sum() == n and mask[:n].all()
    np.testing.assert_array_equal(values[:n, :EMBED_DIM], emb.tokens[-n:])


def test_embeddings_carry_meaning(encoder: TextEncoder) -> None:
    def sentence(text: str) -> np.ndarray:
        return encoder.embed(text).sentence

    love, hate = sentence("I loved this film"), sentence("I hated this movie")
    assert love @ sentence("I really enjoyed the movie") > love @ sentence("the weather is cold today")
    assert love @ hate < 0.99  # a collapsed encoder would give ~1


def test_gold_transcript_columns_and_padding(encoder: TextEncoder) -> None:
    values, mask = encoder.encode_text(SENTENCES[0])
    n = int(mask.sum())
    assert values.shape == (48, 388) and values.dtype == np.float32 and mask.dtype == bool
    assert n == 12 and mask[:n].all() and not mask[n:].any()
    np.testing.assert_array_equal(values[:n, ASR], np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)))
    assert not values[n:].any() and np.abs(values[:n, :EMBED_DIM]).max() > 0.1


def test_asr_words_align_to_their_tokens(encoder: TextEncoder) -> None:
    words = [_word("okay,", 0.3), _word("tokenization", 0.9, logprob=-50.0),
             _word("rocks", 0.6, no_speech=0.2)]
    values, mask = encoder.encode_words(words)
    text = "okay, tokenization rocks"
    pieces = [text[a:b] for a, b in encoder.embed(text).offsets]
    assert pieces[:2] == ["okay", ","] and len(pieces) >= 5  # "tokenization" is several word pieces
    n = len(pieces)
    assert mask.sum() == n
    owner = [0, 0] + [1] * (n - 3) + [2]
    expected = np.array([[w.prob, w.avg_logprob, w.no_speech_prob, 1.0] for w in words])[owner]
    expected[:, 1] = np.clip(expected[:, 1], -10.0, 0.0)
    np.testing.assert_allclose(values[:n, ASR], expected, rtol=0, atol=1e-6)
    gold, _ = encoder.encode_text(text)  # same text: same contextual embeddings
    np.testing.assert_array_equal(values[:n, :EMBED_DIM], gold[:n, :EMBED_DIM])


def test_keeps_the_most_recent_tokens_in_context(encoder: TextEncoder) -> None:
    small = TextEncoder(TextFeatureConfig(max_steps=4, verify_assets=False))
    text = "one two three four five six seven"
    values, mask = small.encode_text(text)
    assert mask.all() and values.shape == (4, 388)
    full = encoder.embed(text).tokens  # embedded with the whole text as context, then the last 4 taken
    np.testing.assert_array_equal(values[:, :EMBED_DIM], full[-4:])
    assert not np.allclose(values[:, :EMBED_DIM], encoder.embed("four five six seven").tokens, atol=1e-3)


def test_window_selects_the_words_heard_in_context(encoder: TextEncoder) -> None:
    words = [_word(t, 0.4 + i / 20, end_s=i) for i, t in enumerate(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"])]
    end = 10 * 1_000_000_000  # 8 s context: words ending in (2 s, 10 s] are d..k
    values, mask = encoder.encode_window(words, end)
    ref_values, ref_mask = encoder.encode_words(words[3:11])
    np.testing.assert_array_equal(values, ref_values)
    np.testing.assert_array_equal(mask, ref_mask)
    assert mask.sum() == 8


@pytest.mark.parametrize("text", ["", "   \n", b""])
def test_empty_text_is_all_masked(encoder: TextEncoder, text: str | bytes) -> None:
    values, mask = encoder.encode_text(text)
    assert values.shape == (48, 388) and not mask.any() and not values.any()


def test_empty_word_list_is_all_masked(encoder: TextEncoder) -> None:
    values, mask = encoder.encode_words([])
    assert not mask.any() and not values.any()


def test_long_text_keeps_its_end(encoder: TextEncoder) -> None:
    text = " ".join(f"word{i}" for i in range(300))
    emb = encoder.embed(text)
    assert emb.hidden.shape[0] == encoder.max_tokens == 256
    assert emb.offsets[-1, 1] == len(text) and emb.offsets[0, 0] > 0  # the start was cut, not the end
    assert encoder.encode_text(text)[1].all()


def test_non_utf8_is_a_typed_error(encoder: TextEncoder) -> None:
    with pytest.raises(TextInputError, match="UTF-8"):
        encoder.encode_text(b"caf\xe9 latte")
    with pytest.raises(TextInputError, match="UTF-8"):
        encoder.encode_text("caf\udce9 latte")  # what errors="surrogateescape" leaves behind
    with pytest.raises(TextInputError, match="word 1"):
        encoder.encode_words([_word("fine", 0.9), _word("caf\udce9", 0.9)])
    np.testing.assert_array_equal(encoder.encode_text("café".encode())[0], encoder.encode_text("café")[0])


def test_config_is_validated() -> None:
    for bad in ({"max_steps": 0}, {"max_steps": 4.5}, {"context_s": 0.0}, {"threads": 0}):
        with pytest.raises(TextConfigError):
            TextFeatureConfig(**bad)


def test_runtime_imports_no_torch(encoder: TextEncoder) -> None:
    code = (
        "import sys\n"
        "from edge.asr import Transcriber\n"
        "from edge.features.text import TextEncoder\n"
        "TextEncoder().encode_text('fine')\n"
        "Transcriber()\n"
        "heavy = ('torch', 'qamoe', 'transformers', 'sentence_transformers')\n"
        "bad = sorted(m for m in heavy if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
