"""VAD asset: Silero VAD v6 (the ONNX model inside the pinned faster-whisper wheel), rewritten as GEMMs.

The source graph computes, per 576-sample row (64 context + 512 new samples): a reflect-padded STFT as a
Conv1d with 258 kernels of 256 taps at stride 128 (4 frames kept), the magnitude of its 129 bins, four
Conv1d+ReLU layers (kernel 3, pad 1, strides 1, 2, 2, 1: 4 -> 4 -> 2 -> 1 -> 1 steps), an LSTM over the rows
(each row is one time step; batch 1) and a 1x1 Conv + sigmoid. ONNX Runtime's CPU Conv runs those as one small
im2col + GEMM per row, which makes the VAD the largest single cost of the audio features.

The rewrite keeps every weight and every operation and changes only the layout, channels-last throughout:
- frames: x' = reflect-pad(x, 64 on the right) reshaped to 5 blocks of 128; frame f = [block f, block f+1],
  f = 0..3 (exactly the 4 frames the source keeps); re|im = frames @ B^T with B the source's STFT basis;
- each Conv1d(kernel 3, pad 1, stride s) = zero-pad 1 step on both sides, gather the taps t = s i + k
  (k = 0, 1, 2) and concatenate them along channels, then one MatMul with W reshaped (3 C, O) + bias;
- the LSTM node is the source's (same weights and state inputs); the decoder's 1x1 Conv is a MatMul.
So every row of every call is one GEMM per layer over all rows. Inputs, outputs and their meaning are the
source's (`input [rows, 576]`, `h`, `c` -> `speech_probs [rows]`, `hn`, `cn`). The build fails unless the
rewrite matches the source under ONNX Runtime within `atol` on stateful streams of speech-like, noisy and
silent audio fed in calls of varying size (sums are re-associated, so they agree to float rounding, not bit
for bit).
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.features.vad import VAD_ARTIFACT, VAD_CHUNK, VAD_CONTEXT
from edge.manifest import Artifact
from qamoe.build.errors import ConversionError, ParityError
from qamoe.build.runner import ArtifactSpec, BuildContext, onnx_io, record
from qamoe.build.wheels import extract_member, write_bytes_atomic

if TYPE_CHECKING:
    import onnx

    from qamoe.build.assets import AssetStage

log = logging.getLogger(__name__)

REL_PATH = "assets/silero-vad-v6/vad_gemm.onnx"
MEMBER = "faster_whisper/assets/silero_vad_v6.onnx"
_ROW = VAD_CONTEXT + VAD_CHUNK
_HOP, _WIN, _BINS, _FRAMES = 128, 256, 129, 4
_CONVS = (("encoder.conv_layers.0", 1), ("encoder.conv_layers.1", 2), ("encoder.conv_layers.2", 2),
          ("encoder.conv_layers.3", 1))


class _GraphBuilder:
    """Accumulates nodes and initialisers with generated names."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def const(self, value: np.ndarray, name: str | None = None) -> str:
        from onnx import numpy_helper

        name = name or f"const_{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def ints(self, *values: int) -> str:
        return self.const(np.array(values, np.int64))

    def op(self, op_type: str, inputs: list[str], outputs: list[str] | None = None, **attrs: Any) -> str:
        from onnx import helper

        outputs = outputs or [f"{op_type.lower()}_{len(self.nodes)}"]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, **attrs))
        return outputs[0]

    def steps(self, x: str, start: int, stop: int, axis: int, step: int = 1) -> str:
        return self.op("Slice", [x, self.ints(start), self.ints(stop), self.ints(axis), self.ints(step)])


def _weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def _check_source(model: onnx.ModelProto, w: dict[str, np.ndarray]) -> Any:
    """The source's LSTM node, after checking the graph is the Silero v6 layout this rewrite assumes."""
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    lstms = [n for n in model.graph.node if n.op_type == "LSTM"]
    basis = w.get("encoder.feature_extractor.forward_basis_buffer")
    convs = [w.get(f"{name}.weight") for name, _ in _CONVS]
    if (
        inputs != ["input", "h", "c"]
        or outputs != ["speech_probs", "hn", "cn"]
        or len(lstms) != 1
        or basis is None
        or basis.shape != (2 * _BINS, 1, _WIN)
        or any(c is None or c.shape[-1] != 3 for c in convs)
    ):
        raise ConversionError(
            "silero-vad: the model in the faster-whisper wheel is not the Silero v6 graph this rewrite "
            "expects (inputs/outputs, STFT basis, conv kernels or LSTM changed); review qamoe/build/vad.py"
        )
    conv_steps = _FRAMES
    for name, stride in _CONVS:
        conv_steps = (conv_steps + 2 - 3) // stride + 1
    if conv_steps != 1:
        raise ConversionError("silero-vad: the encoder no longer reduces the 4 STFT frames to one step")
    return lstms[0]


def rewrite(source: onnx.ModelProto, *, opset: int) -> onnx.ModelProto:
    """The GEMM form of the Silero v6 graph (see the module docstring)."""
    from onnx import helper

    w = _weights(source)
    lstm = _check_source(source, w)
    g = _GraphBuilder()
    padded = g.op("Pad", ["input", g.ints(0, 0, 0, _WIN - _HOP - VAD_CONTEXT)], mode="reflect")  # [rows, 640]
    blocks = g.op("Reshape", [padded, g.ints(0, _FRAMES + 1, _HOP)])
    frames = g.op("Concat", [g.steps(blocks, 0, _FRAMES, 1), g.steps(blocks, 1, _FRAMES + 1, 1)], axis=2)
    basis = w["encoder.feature_extractor.forward_basis_buffer"][:, 0, :]
    re = g.op("MatMul", [frames, g.const(np.ascontiguousarray(basis[:_BINS].T), "stft_real")])
    im = g.op("MatMul", [frames, g.const(np.ascontiguousarray(basis[_BINS:].T), "stft_imag")])
    h = g.op("Sqrt", [g.op("Add", [g.op("Mul", [re, re]), g.op("Mul", [im, im])])])  # [rows, 4, 129]
    steps = _FRAMES
    for name, stride in _CONVS:
        weight, bias = w[f"{name}.weight"], w[f"{name}.bias"]  # [O, C, 3], [O]
        out_steps = (steps + 2 - 3) // stride + 1
        xpad = g.op("Pad", [h, g.ints(0, 1, 0, 0, 1, 0)])
        taps = [g.steps(xpad, k, k + stride * (out_steps - 1) + 1, 1, stride) for k in range(3)]
        cols = g.op("Concat", taps, axis=2)  # [rows, out_steps, 3 C], tap-major
        matrix = np.ascontiguousarray(weight.transpose(2, 1, 0).reshape(-1, weight.shape[0]))
        y = g.op("Add", [g.op("MatMul", [cols, g.const(matrix, f"{name}.matrix")]), g.const(bias, f"{name}.bias")])
        h, steps = g.op("Relu", [y]), out_steps
    sequence = g.op("Reshape", [h, g.ints(-1, 1, int(w[lstm.input[1]].shape[-1]))])  # [rows, batch 1, 128]
    for name in lstm.input[1:4]:
        g.const(w[name], name)
    attrs = {a.name: helper.get_attribute_value(a) for a in lstm.attribute}
    g.op("LSTM", [sequence, *lstm.input[1:4], "", "h", "c"], ["lstm_y", "hn", "cn"], **attrs)
    hidden = g.op("Relu", [g.op("Reshape", ["lstm_y", g.ints(-1, int(attrs["hidden_size"]))])])
    decoder = w["decoder.conv1d.weight"][:, :, 0]  # [1, 128]
    logit = g.op("Add", [g.op("MatMul", [hidden, g.const(np.ascontiguousarray(decoder.T), "decoder.matrix")]),
                         g.const(w["decoder.conv1d.bias"], "decoder.bias")])
    g.op("Reshape", [g.op("Sigmoid", [logit]), g.ints(-1)], ["speech_probs"])
    graph = helper.make_graph(g.nodes, "silero_vad_v6_gemm", list(source.graph.input),
                              list(source.graph.output), g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="qamoe-live")


def parity_streams(seed: int = 0) -> list[np.ndarray]:
    """Test audio (16 kHz float32): a gliding harmonic 'vowel' with syllable-rate amplitude, the same in
    white noise at 0 dB, noise alone, near-silence and a clipped loud burst; 3 s each."""
    rng = np.random.default_rng(seed)
    t = np.arange(3 * 16_000) / 16_000
    f0 = 110 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16_000
    vowel = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    vowel = 0.3 * vowel / np.abs(vowel).max()
    noise = rng.standard_normal(t.size) * vowel.std()
    streams = [vowel, vowel + noise, noise, 1e-4 * rng.standard_normal(t.size), np.clip(8 * vowel, -1, 1)]
    return [s.astype(np.float32) for s in streams]


def parity(source_path: Path, rewritten_path: Path, streams: list[np.ndarray]) -> float:
    """Max abs difference of speech_probs and hn between the two graphs on `streams`, each fed statefully in
    calls of 1, 3, 7 and 10 chunks in turn (the state of each graph carried separately)."""
    import onnxruntime as ort

    def session(path: Path) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    a, b = session(source_path), session(rewritten_path)
    worst = 0.0
    for stream in streams:
        chunks = stream[: stream.size // VAD_CHUNK * VAD_CHUNK].reshape(-1, VAD_CHUNK)
        rows = np.concatenate([np.vstack([np.zeros(VAD_CONTEXT, np.float32), chunks[:-1, -VAD_CONTEXT:]]),
                               chunks], axis=1)
        zero = np.zeros((1, 1, 128), np.float32)
        state_a, state_b = (zero, zero), (zero, zero)
        bounds, sizes = [0], (1, 3, 7, 10)  # calls of 1, 3, 7, 10, 1, 3, ... rows
        while bounds[-1] < rows.shape[0]:
            bounds.append(min(rows.shape[0], bounds[-1] + sizes[(len(bounds) - 1) % len(sizes)]))
        for start, stop in itertools.pairwise(bounds):
            pa, *state_a = a.run(None, {"input": rows[start:stop], "h": state_a[0], "c": state_a[1]})
            pb, *state_b = b.run(None, {"input": rows[start:stop], "h": state_b[0], "c": state_b[1]})
            worst = max(worst, float(np.abs(pa - pb).max()), float(np.abs(state_a[0] - state_b[0]).max()))
    return worst


def build(ctx: BuildContext, stage: AssetStage) -> list[Artifact]:
    import onnx

    pin = stage.pin("faster-whisper")
    wheel = ctx.wheel(pin)
    atol = float(stage.params["atol"])
    with tempfile.TemporaryDirectory(prefix=".vad-", dir=ctx.engines_dir / ".cache") as tmp:
        source_path = extract_member(wheel, MEMBER, Path(tmp) / "silero_vad_v6.onnx")
        model = rewrite(onnx.load(str(source_path)), opset=int(stage.params["opset"]))
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as exc:  # onnx raises ValidationError and friends
            raise ConversionError(f"silero-vad: the rewritten graph fails onnx.checker: {exc}") from exc
        out = Path(tmp) / "vad_gemm.onnx"
        onnx.save(model, str(out))
        diff = parity(source_path, out, parity_streams())
        if not diff <= atol:
            raise ParityError(f"silero-vad: GEMM rewrite vs source max abs diff {diff:.2e} > {atol:.0e}")
        log.info("silero-vad: GEMM rewrite vs source max abs diff %.2e (<= %.0e)", diff, atol)
        write_bytes_atomic(ctx.asset_path(REL_PATH), out.read_bytes())
    inputs, outputs = onnx_io(ctx.asset_path(REL_PATH))
    extra = {
        "model": "Silero VAD v6 (16 kHz), as shipped in faster-whisper",
        "rewrite": "STFT and encoder convolutions as channels-last MatMuls (qamoe/build/vad.py); same weights",
        "chunk_samples": VAD_CHUNK,
        "context_samples": VAD_CONTEXT,
        "sample_rate_hz": 16_000,
        "parity_max_abs_diff": diff,  # speech_probs and hn, stateful streams
        "reference": f"{MEMBER} under onnxruntime",
    }
    return [record(ctx, ArtifactSpec(VAD_ARTIFACT, "onnx", REL_PATH, pin.source((MEMBER,)), inputs, outputs,
                                     extra))]
