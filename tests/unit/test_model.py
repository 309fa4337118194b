"""QA-MoE and its baselines: shapes, gradients to every parameter, top-k routing, configs, ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qamoe.config import ModelConfig
from qamoe.errors import ConfigError
from qamoe.export import INPUT_NAMES, OUTPUT_NAMES, example_inputs, export_onnx, onnx_parity
from qamoe.modality import MODALITIES, Modality
from qamoe.models import available_models, create_model

SEQ = {Modality.TEXT: 6, Modality.AUDIO: 10, Modality.VISION: 8}
DIMS = {Modality.TEXT: 12, Modality.AUDIO: 5, Modality.VISION: 7}


def _batch(batch: int = 64, seed: int = 0) -> tuple[dict, dict, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    feats = {m: torch.randn(batch, SEQ[m], DIMS[m], generator=g) for m in MODALITIES}
    masks = {m: torch.rand(batch, SEQ[m], generator=g) > 0.3 for m in MODALITIES}
    masks[Modality.VISION][:5] = False  # some samples without a face at all
    labels = torch.empty(batch).uniform_(-3, 3, generator=g)
    return feats, masks, labels


def _config(**kw) -> ModelConfig:
    return ModelConfig(input_dims=DIMS, **({"d_model": 16, "expert_hidden": 24, "dropout": 0.0} | kw))


@pytest.mark.parametrize("name", available_models())
@pytest.mark.parametrize("objective", ["unimodal_nll", "clean_recon"])
def test_every_parameter_receives_a_gradient(name: str, objective: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, _config(reliability_objective=objective))
    feats, masks, labels = _batch()
    out = model(feats, masks)
    terms = model.loss_terms(out, labels, clean_feats=feats, clean_masks=masks)
    sum(terms.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert no_grad == [], f"{name}: parameters without gradient: {no_grad}"


def test_every_expert_gets_gradient_and_top_k_is_exact() -> None:
    torch.manual_seed(1)
    model = create_model("qamoe", _config(n_experts=8, top_k=3))
    feats, masks, labels = _batch(batch=128)
    out = model(feats, masks)
    w = out.router_weights
    assert w.shape == (128, 8)
    assert torch.all((w > 0).sum(-1) == 3), "each sample must use exactly k experts"
    assert torch.allclose(w.sum(-1), torch.ones(128), atol=1e-6)
    model.loss_terms(out, labels, clean_feats=feats, clean_masks=masks)["task_l1"].backward()
    per_expert = model.experts.w_out.grad.abs().sum(dim=(1, 2))
    assert torch.all(per_expert > 0), f"experts without gradient: {torch.nonzero(per_expert == 0).flatten()}"


def test_unselected_expert_gets_no_gradient_from_a_sample() -> None:
    torch.manual_seed(2)
    model = create_model("qamoe", _config(n_experts=8, top_k=2))
    feats, masks, _ = _batch(batch=1)
    out = model(feats, masks)
    out.valence.sum().backward()
    unused = (out.router_weights[0] == 0).nonzero().flatten()
    assert len(unused) == 6
    assert torch.all(model.experts.w_out.grad[unused] == 0)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_top_k_is_configurable(k: int) -> None:
    model = create_model("qamoe", _config(n_experts=8, top_k=k))
    feats, masks, _ = _batch(batch=16)
    assert torch.all((model(feats, masks).router_weights > 0).sum(-1) == k)


def test_output_record_ranges() -> None:
    model = create_model("qamoe", _config())
    feats, masks, _ = _batch()
    out = model(feats, masks)
    assert out.valence.shape == (64,) and torch.all(out.valence.abs() <= 3.0)
    assert torch.all(out.predictive_variance > 0)
    for m in MODALITIES:
        r = out.reliability[m]
        assert r.shape == (64,) and torch.all((r > 0) & (r <= 1))
    assert out.reliability_matrix().shape == (64, 3)


def test_all_absent_sample_is_finite() -> None:
    model = create_model("qamoe", _config())
    feats, masks, _ = _batch(batch=4)
    masks = {m: torch.zeros_like(k) for m, k in masks.items()}
    out = model(feats, masks)
    assert torch.all(torch.isfinite(out.valence)) and torch.all(torch.isfinite(out.log_variance))


def test_quality_gate_ablation_has_no_quality_gate() -> None:
    full = create_model("qamoe", _config())
    ablated = create_model("qamoe_no_quality_gate", _config())
    assert full.router.quality is not None and ablated.router.quality is None
    assert create_model("qamoe_no_prior", _config()).priors["text"].prior is None


def test_standardised_router_logits_bound_the_top_expert_weight(tmp_path) -> None:
    """router_logits="standardised": per sample the gate logits have mean 0 and variance 1 over the experts, so
    however large the gates grow, the top-k softmax stays a mixture (top weight <= ~0.91 for 8 experts, k 3);
    "raw" (the default, every older checkpoint) lets one expert take it all. The ONNX graph matches torch."""
    from qamoe.layers import QualityAwareRouter

    torch.manual_seed(0)
    fused, rel = torch.randn(256, 12), torch.rand(256, 3)
    raw = QualityAwareRouter(in_dim=12, n_modalities=3, n_experts=8, top_k=3).eval()
    std = QualityAwareRouter(in_dim=12, n_modalities=3, n_experts=8, top_k=3, standardise=True).eval()
    std.load_state_dict(raw.state_dict())  # the setting adds no parameter
    with torch.no_grad():
        for lin in (raw.semantic, std.semantic):
            lin.weight.mul_(50.0)  # gates grown large, as training grows them
        w_raw, _ = raw(fused, rel)
        w_std, logits = std(fused, rel)
    assert torch.allclose(logits.mean(-1), torch.zeros(256), atol=1e-5)
    assert torch.allclose(logits.var(-1, unbiased=False), torch.ones(256), atol=1e-3)
    assert float(w_raw.max(-1).values.median()) > 0.99
    assert float(w_std.max(-1).values.max()) <= 0.92
    assert torch.equal(w_raw.argmax(-1), w_std.argmax(-1))  # the same ranking: only the scale changed
    model = create_model("qamoe", _config(router_logits="standardised"))
    path = export_onnx(model, tmp_path / "std.onnx", SEQ)
    assert onnx_parity(model, path, example_inputs(DIMS, SEQ, batch=5, seed=5)) <= 1e-4


@pytest.mark.parametrize(
    "kw",
    [{"top_k": 9}, {"d_model": 0}, {"dropout": 1.0}, {"encoder_kernel": 4}, {"reliability_objective": "x"},
     {"router_logits": "softmax"}],
)
def test_config_rejects_bad_values(kw: dict) -> None:
    with pytest.raises(ConfigError):
        _config(**kw)


def test_config_round_trip_and_unknown_keys() -> None:
    cfg = ModelConfig.for_dataset("mosei", top_k=2)
    assert cfg.input_dims[Modality.AUDIO] == 74
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    bad = cfg.to_dict() | {"topk": 2}
    with pytest.raises(ConfigError, match="unknown key"):
        ModelConfig.from_dict(bad)
    with pytest.raises(ConfigError, match="unknown dataset"):
        ModelConfig.for_dataset("iemocap")


@pytest.mark.parametrize("name", ["qamoe", "late_fusion", "early_fusion"])
def test_onnx_export_matches_torch(tmp_path, name: str) -> None:
    torch.manual_seed(3)
    model = create_model(name, _config())
    path = export_onnx(model, tmp_path / f"{name}.onnx", SEQ)
    import onnx

    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == INPUT_NAMES
    assert [o.name for o in graph.output] == OUTPUT_NAMES
    for batch in (1, 7):
        inputs = example_inputs(DIMS, SEQ, batch=batch, seed=batch)
        assert onnx_parity(model, path, inputs) <= 1e-4


def test_onnx_dynamic_time(tmp_path) -> None:
    model = create_model("qamoe", _config())
    path = export_onnx(model, tmp_path / "m.onnx", SEQ, dynamic_time=True)
    longer = {m: t + 5 for m, t in SEQ.items()}
    assert onnx_parity(model, path, example_inputs(DIMS, longer, batch=3)) <= 1e-4


def test_modality_is_named_not_positional() -> None:
    """The same features keyed under swapped names must change the output (names are honoured)."""
    dims = {m: 8 for m in MODALITIES}
    model = create_model("qamoe", ModelConfig(input_dims=dims, d_model=16, dropout=0.0)).eval()
    g = torch.Generator().manual_seed(0)
    feats = {m: torch.randn(4, 6, 8, generator=g) for m in MODALITIES}
    masks = {m: torch.ones(4, 6, dtype=torch.bool) for m in MODALITIES}
    swapped = {Modality.TEXT: feats[Modality.AUDIO], Modality.AUDIO: feats[Modality.TEXT], Modality.VISION: feats[Modality.VISION]}
    assert not torch.allclose(model(feats, masks).valence, model(swapped, masks).valence)
    np.testing.assert_allclose(model(feats, masks).valence.detach(), model(dict(feats), masks).valence.detach())


def test_an_absent_modality_gets_the_variance_bound_and_only_it() -> None:
    """absent_variance="max": a modality with no observed step has r = sigmoid(-8) (issue 7 wants <= 0.2 where
    the signal is gone); every present modality and sample keeps the head's own estimate ("learned")."""
    torch.manual_seed(0)
    gated = create_model("qamoe", _config(dropout=0.0)).eval()
    learned = create_model("qamoe", _config(dropout=0.0, absent_variance="learned")).eval()
    learned.load_state_dict(gated.state_dict())  # same weights: the setting adds no parameter
    inputs = example_inputs(DIMS, SEQ, batch=4, seed=1)  # sample 0: audio fully absent
    inputs["vision_mask"][2] = False
    inputs["vision_feats"][2] = 0.0
    feats = {m: torch.from_numpy(inputs[f"{m}_feats"]) for m in MODALITIES}
    masks = {m: torch.from_numpy(inputs[f"{m}_mask"]) for m in MODALITIES}
    with torch.no_grad():
        r_gated, r_learned = gated(feats, masks).reliability, learned(feats, masks).reliability
    absent = {Modality.AUDIO: 0, Modality.VISION: 2}
    for m in MODALITIES:
        for b in range(4):
            if absent.get(m) == b:
                assert float(r_gated[m][b]) == pytest.approx(1 / (1 + np.exp(8.0)), rel=1e-4)
                assert float(r_learned[m][b]) > 1e-3  # what the untrained head says: not the bound
            else:
                assert float(r_gated[m][b]) == float(r_learned[m][b])


def test_absent_variance_is_validated() -> None:
    with pytest.raises(ConfigError, match="absent_variance"):
        _config(absent_variance="zero")


def test_encoder_ignores_invalid_steps_and_pools_an_absent_stream_to_zero() -> None:
    torch.manual_seed(0)
    model = create_model("qamoe", _config()).eval()
    feats, masks, _ = _batch(batch=8)
    masks[Modality.AUDIO][2] = False  # one sample with no audio at all
    enc = model.encoders["audio"]
    norm = model.norms["audio"]
    pooled, coverage = enc(feats[Modality.AUDIO], masks[Modality.AUDIO], norm.mean, norm.std)
    garbage = feats[Modality.AUDIO].clone()
    garbage[~masks[Modality.AUDIO]] = 1e3  # whatever sits at an invalid step must not leak
    again, _ = enc(garbage, masks[Modality.AUDIO], norm.mean, norm.std)
    assert torch.equal(pooled, again)
    assert torch.count_nonzero(pooled[2]) == 0 and coverage[2] == 0
    assert torch.all(pooled.abs().sum(dim=1)[masks[Modality.AUDIO].any(dim=1)] > 0)


def test_a_column_constant_in_training_adds_no_rounding_noise() -> None:
    # vision's face_present is 1 at every valid step: std sits at the 1e-6 floor, mean at 1. Folding the mean
    # into the bias, b - (W / std) mean, cancelled a ~1e5 product in float32 and left ~1e-2 of noise.
    torch.manual_seed(0)
    model = create_model("qamoe", _config()).eval()
    feats, masks, _ = _batch(batch=8)
    x, m = feats[Modality.VISION].clone(), masks[Modality.VISION]
    mean, std = torch.zeros(x.shape[-1]), torch.ones(x.shape[-1])
    mean[0], std[0] = 1.0, 1e-6
    x[..., 0] = 1.0
    enc = model.encoders["vision"]
    got, _ = enc(x, m, mean, std)
    ref, _ = enc.double()(x.double(), m, mean.double(), std.double())
    assert float((got.double() - ref).abs().max()) < 1e-5


def test_export_avoids_cpu_slow_patterns(tmp_path) -> None:
    """Patterns that cost ONNX Runtime's CPU kernels several times their work (docs/BENCHMARKS.md): a MatMul
    with a 1-D operand, Einsum, and ConstantOfShape-built fills inside the reliability head."""
    import onnx

    model = create_model("qamoe", _config())
    path = export_onnx(model, tmp_path / "m.onnx", SEQ)
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in [*graph.value_info, *graph.input]}
    ranks |= {t.name: len(t.dims) for t in graph.initializer}
    ops = [n.op_type for n in graph.node]
    assert "Einsum" not in ops and "ConstantOfShape" not in ops[: ops.index("TopK")]
    constants = {t.name for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "MatMul" and not constants.issuperset(node.input):  # constants fold at load
            assert all(ranks.get(name, 2) >= 2 for name in node.input), (node.name, list(node.input))
