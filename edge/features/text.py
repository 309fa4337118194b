"""Text features for QA-MoE: MiniLM contextual token embeddings of what was said, with the ASR's confidence.

Runtime: `tokenizers` + onnxruntime on the `all-minilm-l6-v2` ONNX export (its `token_embeddings` output, the
BERT last hidden state that sentence-transformers mean-pools into `sentence_embedding`). No torch.

Steps and columns. The text stream is token-level (see `edge.features.spec`): one step per WordPiece token of
the words heard, in time order, real tokens first and zero padding after (mask False). The words are joined
by single spaces and encoded in ONE pass, so every token's embedding is contextual over the whole text; then
the LAST `max_steps` real tokens are kept (the most recent speech), [CLS]/[SEP]/padding never. Columns
(`TEXT_COLUMNS`, 388):
  emb_000..emb_383     the token's contextual embedding (not normalised; sentence-transformers' pooling input)
  asr_word_prob        Whisper's probability of the word the token belongs to, in [0, 1]
  asr_avg_logprob      that word's segment mean token log-probability, clipped to [-10, 0]
  asr_no_speech_prob   that segment's no-speech probability, in [0, 1]
  from_asr             1 for ASR words, 0 for gold transcripts
Gold transcripts (`encode_text`) carry prob 1, avg_logprob 0, no_speech 0, from_asr 0: a perfect recogniser,
so training on gold text and serving on ASR text differ only where the ASR is unsure, which the model sees.
Tokens map to words through the tokenizer's character offsets (punctuation Whisper glued to a word, "okay,",
belongs to that word).

Defaults. `max_steps` = 48: conversational speech runs at 2.5-4 words/s and WordPiece at 1.1-1.25 tokens per
word (measured on the CMU-MOSI/MOSEI transcripts), so the `context_s` = 8 s before a window's end holds 25-40
tokens; 48 tokens hold 99% of MOSI segments and 93% of MOSEI segments whole, and cost ~2x less attention than
64. 8 s is two 4 s windows: sentiment in words spans clauses, and a word reaches the live stream 1-2 s after
it is said (the streaming ASR commits a word when two decodes agree), so the previous clause is still context.

Limits. Text longer than the tokenizer's limit (256 tokens with [CLS]/[SEP], ~200 words) is truncated from
the START (the tokenizer is switched to left truncation): the oldest words go, the last `max_steps` tokens
and up to 254 tokens of left context remain. Empty or whitespace-only text gives an all-masked step array.
Text that is not valid UTF-8 (undecodable bytes, lone surrogates) is a `TextInputError`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import ModelFault, SourceFault
from edge.vocab import NS, Word

logger = logging.getLogger(__name__)

EMBED_DIM = 384
ASR_COLUMNS = ("asr_word_prob", "asr_avg_logprob", "asr_no_speech_prob", "from_asr")
TEXT_COLUMNS: tuple[str, ...] = tuple(f"emb_{i:03d}" for i in range(EMBED_DIM)) + ASR_COLUMNS
LOGPROB_FLOOR = -10.0
_OUTPUTS = ("token_embeddings", "sentence_embedding")
_GOLD = (1.0, 0.0, 0.0)  # word prob, avg_logprob, no_speech_prob of a perfect recogniser


class TextFeatureError(ModelFault, ValueError):
    """Base of the text encoder's errors (exit 4: the encoder cannot be used); each message names the fix."""


class TextConfigError(TextFeatureError):
    """An invalid `TextFeatureConfig`. No qamoe-live flag sets it: its values go with the engines (the spec's
    48 tokens, the MiniLM artifacts), so, like `VisualConfigError`, a bad one is a model problem (exit 4)."""


class TextInputError(SourceFault, ValueError):
    """Text that cannot be encoded (not valid UTF-8). The pipeline turns one into an invalid window and the
    corpus tools skip the clip; one that escaped would be a transcript of the input that cannot be decoded,
    hence exit 3, not a `TextFeatureError` (the encoder is fine)."""


class TextModelError(TextFeatureError):
    """The MiniLM artifacts do not have the inputs/outputs this extractor needs."""


@dataclass(frozen=True)
class TextFeatureConfig:
    """Window geometry of the text stream and the artifacts it uses (defaults justified in the module doc)."""

    max_steps: int = 48
    context_s: float = 8.0
    model_artifact: str = "all-minilm-l6-v2"
    tokenizer_artifact: str = "all-minilm-l6-v2-tokenizer"
    threads: int = 1  # one ORT thread: on 2 cores the other stages need the second one
    verify_assets: bool = True  # sha256 the artifacts against the manifest on load (~0.2 s)

    def __post_init__(self) -> None:
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise TextConfigError(f"max_steps={self.max_steps!r}: use a positive number of tokens (e.g. 48)")
        if not self.context_s > 0:
            raise TextConfigError(f"context_s={self.context_s!r}: use a positive number of seconds (e.g. 8)")
        if self.threads < 1:
            raise TextConfigError(f"threads={self.threads}: use 1 or more onnxruntime threads")

    @property
    def columns(self) -> tuple[str, ...]:
        return TEXT_COLUMNS

    @property
    def dim(self) -> int:
        return len(TEXT_COLUMNS)


@dataclass(frozen=True)
class TokenEmbeddings:
    """One encoder pass over `text`. `hidden` [T, 384]: the last hidden state of every attended position,
    [CLS] and [SEP] included (sentence-transformers mean-pools exactly these into `sentence`, L2-normalised;
    zeros for empty text); `real` indexes the word-piece positions; `offsets` [n_real, 2] are their character
    spans in `text`."""

    text: str
    hidden: np.ndarray
    real: np.ndarray
    offsets: np.ndarray
    sentence: np.ndarray

    @property
    def tokens(self) -> np.ndarray:
        """Embeddings of the real (word-piece) tokens, [n_real, 384]."""
        return self.hidden[self.real]


def _checked_text(text: Any, what: str) -> str:
    if isinstance(text, (bytes, bytearray)):
        try:
            return bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TextInputError(
                f"{what} is not valid UTF-8 ({exc.reason} at byte {exc.start}): decode it with its real "
                "encoding first, e.g. raw.decode('latin-1')"
            ) from None
    if not isinstance(text, str):
        raise TextInputError(f"{what} must be str (or UTF-8 bytes), got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TextInputError(
            f"{what} holds characters that are not valid UTF-8 ({exc.reason} at {exc.start}), e.g. bytes "
            "smuggled in by errors='surrogateescape': decode the source with its real encoding"
        ) from None
    return text


def _join(words: Sequence[Word]) -> tuple[str, np.ndarray]:
    """The words as one space-joined text and each word's start character."""
    parts: list[str] = []
    starts: list[int] = []
    pos = 0
    for i, w in enumerate(words):
        piece = _checked_text(w.text, f"word {i}").strip()
        if not piece:
            piece = " "  # keeps the word -> index alignment; produces no token
        starts.append(pos)
        parts.append(piece)
        pos += len(piece) + 1
    return " ".join(parts), np.asarray(starts, dtype=np.int64)


class TextEncoder:
    """Words or a transcript -> (values [max_steps, 388] float32, mask [max_steps] bool). Not thread-safe:
    one worker owns an instance."""

    def __init__(self, config: TextFeatureConfig | None = None,
                 engines_dir: str | os.PathLike[str] | None = None) -> None:
        self.config = config if config is not None else TextFeatureConfig()
        self._tokenizer, self._max_tokens = self._load_tokenizer(engines_dir)
        self._session = self._load_session(engines_dir)

    @property
    def columns(self) -> tuple[str, ...]:
        return TEXT_COLUMNS

    @property
    def max_tokens(self) -> int:
        """The tokenizer's limit, [CLS] and [SEP] included."""
        return self._max_tokens

    def _load_tokenizer(self, engines_dir: str | os.PathLike[str] | None) -> tuple[Any, int]:
        from tokenizers import Tokenizer

        from edge.assets import resolve_artifact

        name, verify = self.config.tokenizer_artifact, self.config.verify_assets
        _, path = resolve_artifact(name, engines_dir, verify=verify)
        tok = Tokenizer.from_file(str(path))
        limit = int((tok.truncation or {}).get("max_length", 256))
        tok.enable_truncation(max_length=limit, direction="left")  # keep the most recent words
        tok.no_padding()
        return tok, limit

    def _load_session(self, engines_dir: str | os.PathLike[str] | None) -> Any:
        import onnxruntime as ort

        from edge.assets import resolve_artifact

        _, path = resolve_artifact(self.config.model_artifact, engines_dir, verify=self.config.verify_assets)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        outputs = {o.name: o.shape for o in session.get_outputs()}
        if not set(_OUTPUTS) <= set(outputs) or outputs["token_embeddings"][-1] != EMBED_DIM:
            raise TextModelError(
                f"{path} has outputs {outputs}; this extractor needs token_embeddings [B, T, {EMBED_DIM}] "
                "and sentence_embedding: rebuild it with `python tools/build_engine.py --only minilm`"
            )
        logger.debug("text encoder: %s (%d ORT thread(s))", path, self.config.threads)
        return session

    def embed(self, text: str | bytes) -> TokenEmbeddings:
        """One encoder pass over `text`: contextual embeddings of its tokens and the sentence embedding."""
        text = _checked_text(text, "text")
        enc = self._tokenizer.encode(text)
        real = np.flatnonzero(np.asarray(enc.special_tokens_mask) == 0)
        offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)[real]
        if real.size == 0:
            zeros = np.zeros((0, EMBED_DIM), np.float32)
            return TokenEmbeddings(text, zeros, real, offsets, np.zeros(EMBED_DIM, np.float32))
        feed = {
            "input_ids": np.asarray([enc.ids], dtype=np.int64),
            "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.asarray([enc.type_ids], dtype=np.int64),
        }
        hidden, sentence = self._session.run(list(_OUTPUTS), feed)
        return TokenEmbeddings(text, hidden[0], real, offsets, sentence[0])

    def encode_words(self, words: Sequence[Word]) -> tuple[np.ndarray, np.ndarray]:
        """Feature steps of ASR words (in time order), the last `max_steps` tokens; from_asr = 1."""
        text, starts = _join(words)
        emb = self.embed(text)
        # the word of each token: the last word starting at or before the token's first character
        owner = np.searchsorted(starts, emb.offsets[:, 0], side="right") - 1
        asr = np.asarray([[w.prob, w.avg_logprob, w.no_speech_prob] for w in words], np.float32)
        return self._steps(emb.tokens, asr.reshape(-1, 3)[owner], from_asr=1.0)

    def encode_window(self, words: Sequence[Word], end_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """`encode_words` of the words that end in (end_ns - context_s, end_ns]: those heard in context."""
        lo = end_ns - round(self.config.context_s * NS)
        return self.encode_words([w for w in words if lo < w.end_ns <= end_ns])

    def encode_text(self, text: str | bytes) -> tuple[np.ndarray, np.ndarray]:
        """Feature steps of a gold transcript: ASR columns of a perfect recogniser, from_asr = 0."""
        emb = self.embed(text)
        asr = np.tile(np.asarray(_GOLD, np.float32), (emb.tokens.shape[0], 1))
        return self._steps(emb.tokens, asr, from_asr=0.0)

    def _steps(
        self, tokens: np.ndarray, asr: np.ndarray, *, from_asr: float
    ) -> tuple[np.ndarray, np.ndarray]:
        n = min(tokens.shape[0], self.config.max_steps)
        values = np.zeros((self.config.max_steps, len(TEXT_COLUMNS)), np.float32)
        mask = np.zeros(self.config.max_steps, bool)
        if n:
            values[:n, :EMBED_DIM] = tokens[-n:]
            values[:n, EMBED_DIM:EMBED_DIM + 3] = asr[-n:]
            values[:n, EMBED_DIM + 1] = np.clip(values[:n, EMBED_DIM + 1], LOGPROB_FLOOR, 0.0)
            values[:n, EMBED_DIM + 3] = from_asr
            mask[:n] = True
        return values, mask
