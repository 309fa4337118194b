"""The Continuous Reliability Spectrum: corruptions, protocols and the training-time sampler."""

from __future__ import annotations

import numpy as np
import pytest

from qamoe.data.featureset import FeatureSet
from qamoe.errors import ConfigError
from qamoe.modality import MODALITIES, Modality
from qamoe.spectrum import (
    SEVERITY_GRID,
    ModalityCorruption,
    SpectrumConfig,
    additive_noise,
    apply_condition,
    available_corruptions,
    available_protocols,
    gaussian_noise,
    get_corruption,
    get_protocol,
    modality_absence,
    random_missing,
    register_corruption,
    sample_corruption,
)

CORRUPTIONS = ("gaussian_noise", "additive_noise", "random_missing", "modality_absence")
SHAPES = {Modality.TEXT: (10, 8), Modality.AUDIO: (20, 5), Modality.VISION: (15, 6)}


def _padded(n: int, t: int, d: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random features with per-sample valid lengths in [1, t] and zero padding, as loaders produce."""
    lengths = rng.integers(1, t + 1, size=n)
    mask = np.arange(t)[None, :] < lengths[:, None]
    x = rng.standard_normal((n, t, d)).astype(np.float32) * mask[..., None]
    return x, mask


def make_fs(n: int = 64, seed: int = 0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    feats, masks = {}, {}
    for m in MODALITIES:
        feats[m], masks[m] = _padded(n, *SHAPES[m], rng)
    labels = rng.uniform(-3, 3, n).astype(np.float32)
    return FeatureSet(feats=feats, masks=masks, labels=labels, ids=np.array([f"s{i}" for i in range(n)]))


@pytest.fixture()
def xm() -> tuple[np.ndarray, np.ndarray]:
    return _padded(32, 12, 4, np.random.default_rng(123))


def _run(name: str, x: np.ndarray, m: np.ndarray, sev: float | np.ndarray, seed: int):
    return get_corruption(name)(x, m, sev, np.random.default_rng(seed))


def _assert_same_fs(a: FeatureSet, b: FeatureSet) -> None:
    for m in MODALITIES:
        np.testing.assert_array_equal(a.feats[m], b.feats[m])
        np.testing.assert_array_equal(a.masks[m], b.masks[m])


def _fs_equal(a: FeatureSet, b: FeatureSet) -> bool:
    return all(
        np.array_equal(a.feats[m], b.feats[m]) and np.array_equal(a.masks[m], b.masks[m]) for m in MODALITIES
    )


# ---------------------------------------------------------------- corruptions


def test_registry_lists_and_rejects_names() -> None:
    assert set(CORRUPTIONS) <= set(available_corruptions())
    assert get_corruption("random_missing") is random_missing
    with pytest.raises(ConfigError, match="gaussian_noise"):
        get_corruption("salt_and_pepper")
    with pytest.raises(ConfigError, match="already registered"):
        register_corruption("gaussian_noise")(gaussian_noise)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_same_seed_same_result_other_seed_differs(name: str, xm) -> None:
    x, m = xm
    a, b, c = _run(name, x, m, 0.5, 7), _run(name, x, m, 0.5, 7), _run(name, x, m, 0.5, 8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not (np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1]))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_inputs_not_mutated_and_global_rng_untouched(name: str, xm) -> None:
    x, m = xm
    x0, m0 = x.copy(), m.copy()
    state = np.random.get_state()[1].copy()
    nx, nm = _run(name, x, m, 1.0, 0)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(m, m0)
    assert not np.shares_memory(nx, x) and not np.shares_memory(nm, m)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_zero_is_identity(name: str, xm) -> None:
    x, m = xm
    nx, nm = _run(name, x, m, 0.0, 0)
    np.testing.assert_array_equal(nx, x)
    np.testing.assert_array_equal(nm, m)
    assert nx.dtype == x.dtype


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("bad", [-0.1, 1.1, float("nan"), np.array([0.2, 1.5])])
def test_severity_out_of_range_rejected(name: str, bad, xm) -> None:
    x, m = xm
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        _run(name, x, m, bad, 0)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_bad_severity_shape_and_rng_rejected(name: str, xm) -> None:
    x, m = xm
    with pytest.raises(ConfigError, match="broadcast"):
        _run(name, x, m, np.full(5, 0.5), 0)
    with pytest.raises(ConfigError, match="Generator"):
        get_corruption(name)(x, m, 0.5, np.random.RandomState(0))


@pytest.mark.parametrize("name", ["random_missing", "modality_absence"])
@pytest.mark.parametrize("sev", [0.3, 0.8, 1.0])
def test_erasure_keeps_mask_and_features_consistent(name: str, sev: float, xm) -> None:
    x, m = xm
    nx, nm = _run(name, x, m, sev, 3)
    assert not np.any(nm & ~m), "a corruption must never turn a step valid"
    assert np.all(nx[~nm] == 0), "features must be zero wherever the mask is False"
    np.testing.assert_array_equal(nx[nm], x[nm])  # surviving steps are untouched


def test_missing_at_severity_one_removes_every_step(xm) -> None:
    x, m = xm
    nx, nm = random_missing(x, m, 1.0, np.random.default_rng(0))
    assert not nm.any()
    assert not nx.any()


def test_missing_erase_rate_matches_eta() -> None:
    x, m = _padded(400, 500, 1, np.random.default_rng(1))
    _, nm = random_missing(x, m, 0.3, np.random.default_rng(2))
    rate = 1.0 - nm.sum() / m.sum()  # over valid steps only: padding is not "erased"
    assert abs(rate - 0.3) < 0.02


def test_absence_rate_and_whole_sample() -> None:
    x, m = _padded(20000, 3, 2, np.random.default_rng(1))
    nx, nm = modality_absence(x, m, 0.3, np.random.default_rng(2))
    gone = ~nm.any(axis=1)
    assert abs(gone.mean() - 0.3) < 0.02
    assert not nx[gone].any()
    np.testing.assert_array_equal(nm[~gone], m[~gone])  # a sample is all or nothing


def test_additive_noise_std_matches_lambda_and_per_feature_scale() -> None:
    x = np.zeros((200, 100, 4), np.float32)
    m = np.ones((200, 100), bool)
    scale = np.array([1.0, 2.0, 0.5, 4.0], np.float32)
    nx, nm = additive_noise(x, m, 0.6, np.random.default_rng(0), scale=scale)
    np.testing.assert_allclose(nx.reshape(-1, 4).std(axis=0), 0.6 * scale, rtol=0.02)
    np.testing.assert_allclose(nx.reshape(-1, 4).mean(axis=0) / scale, 0.0, atol=0.02)
    np.testing.assert_array_equal(nm, m)
    with pytest.raises(ConfigError, match="scale"):
        additive_noise(x, m, 0.6, np.random.default_rng(0), scale=np.ones(3))


@pytest.mark.parametrize("lam", [0.2, 0.5, 1.0])
def test_gaussian_noise_preserves_variance_and_sets_the_snr(lam: float) -> None:
    """x' = c + sqrt(1-lam)(x-c) + sqrt(lam) s eps: same mean and std as x, and corr(x, x')^2 = 1 - lam."""
    rng = np.random.default_rng(1)
    center = np.array([5.0, -2.0, 0.0], np.float32)
    scale = np.array([1.0, 3.0, 0.5], np.float32)
    x = (center + scale * rng.standard_normal((400, 50, 3))).astype(np.float32)
    m = np.ones((400, 50), bool)
    nx, _ = gaussian_noise(x, m, lam, np.random.default_rng(0), scale=scale, center=center)
    flat_x, flat_n = x.reshape(-1, 3), nx.reshape(-1, 3)
    np.testing.assert_allclose(flat_n.mean(0), center, atol=0.03 * scale.max())
    np.testing.assert_allclose(flat_n.std(0), scale, rtol=0.02)
    for d in range(3):
        r = np.corrcoef(flat_x[:, d], flat_n[:, d])[0, 1]
        assert r**2 == pytest.approx(1.0 - lam, abs=0.02)


def test_gaussian_noise_std_on_zero_input() -> None:
    x = np.zeros((200, 100, 4), np.float32)
    m = np.ones((200, 100), bool)
    scale = np.array([1.0, 2.0, 0.5, 4.0], np.float32)
    nx, nm = gaussian_noise(x, m, 0.6, np.random.default_rng(0), scale=scale)
    np.testing.assert_allclose(nx.reshape(-1, 4).std(axis=0), np.sqrt(0.6) * scale, rtol=0.02)
    np.testing.assert_allclose(nx.reshape(-1, 4).mean(axis=0) / scale, 0.0, atol=0.02)
    np.testing.assert_array_equal(nm, m)
    with pytest.raises(ConfigError, match="scale"):
        gaussian_noise(x, m, 0.6, np.random.default_rng(0), scale=np.ones(3))


def test_noise_leaves_padding_exactly_as_it_was(xm) -> None:
    x, m = xm
    x = x.copy()
    x[~m] = 7.0  # not the FeatureSet convention, so an accidental overwrite would show
    nx, _ = gaussian_noise(x, m, 1.0, np.random.default_rng(0))
    np.testing.assert_array_equal(nx[~m], x[~m])
    assert np.all(nx[m] != x[m])


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_per_sample_severity(name: str, xm) -> None:
    x, m = xm
    sev = np.tile([0.0, 1.0], len(x) // 2)
    nx, nm = _run(name, x, m, sev, 0)
    off, on = sev == 0.0, sev == 1.0
    np.testing.assert_array_equal(nx[off], x[off])
    np.testing.assert_array_equal(nm[off], m[off])
    if name in ("gaussian_noise", "additive_noise"):
        assert np.all(nx[on][m[on]] != x[on][m[on]])
    else:
        assert not nm[on].any() and not nx[on].any()


def test_leading_batch_dims_and_single_sequence() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 2)).astype(np.float32)
    m = np.ones((2, 3, 6), bool)
    sev = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    nx, nm = random_missing(x, m, sev, np.random.default_rng(1))
    np.testing.assert_array_equal(nm.any(axis=-1), sev == 0.0)
    nx, nm = modality_absence(x[0, 0], m[0, 0], 1.0, np.random.default_rng(1))  # [T, D], no batch dim
    assert not nm.any() and not nx.any()


# ---------------------------------------------------------------- protocols


@pytest.mark.parametrize(
    ("name", "count"),
    [("clean", 1), ("missing_patterns", 7), ("noise", 10), ("random_missing", 10), ("joint", 100)],
)
def test_protocol_sizes(name: str, count: int) -> None:
    conditions = get_protocol(name)
    assert len(conditions) == count
    assert len({c.name for c in conditions}) == count
    assert all(c.protocol == name for c in conditions)


def test_protocol_registry() -> None:
    assert set(available_protocols()) == {"clean", "missing_patterns", "noise", "random_missing", "joint", "additive_noise"}
    with pytest.raises(ConfigError, match="missing_patterns"):
        get_protocol("fixed_missing")


def test_grid_params_are_rounded_floats() -> None:
    assert SEVERITY_GRID == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert [c.params["lambda"] for c in get_protocol("noise")] == list(SEVERITY_GRID)
    assert [c.params["eta"] for c in get_protocol("random_missing")] == list(SEVERITY_GRID)
    joint = get_protocol("joint")
    grid = {(a, b) for a in SEVERITY_GRID for b in SEVERITY_GRID}
    assert {(c.params["lambda"], c.params["eta"]) for c in joint} == grid
    c = next(c for c in joint if c.params == {"lambda": 0.7, "eta": 0.3})
    assert c.name == "lambda=0.7,eta=0.3"
    assert c.per_modality[Modality.AUDIO] == (
        ModalityCorruption("gaussian_noise", 0.7),
        ModalityCorruption("random_missing", 0.3),
    )


def test_missing_patterns_keep_exactly_their_modalities() -> None:
    fs = make_fs()
    conditions = get_protocol("missing_patterns")
    kept_sets = {frozenset(c.params["kept"].split("+")) for c in conditions}
    assert len(kept_sets) == 7 and frozenset() not in kept_sets
    for c in conditions:
        kept = {Modality(k) for k in c.params["kept"].split("+")}
        assert c.name == f"kept={c.params['kept']}"
        out = apply_condition(fs, c, np.random.default_rng(0))
        for m in MODALITIES:
            if m in kept:
                np.testing.assert_array_equal(out.feats[m], fs.feats[m])
                np.testing.assert_array_equal(out.masks[m], fs.masks[m])
            else:
                assert not out.masks[m].any() and not out.feats[m].any()


def test_clean_condition_is_identity() -> None:
    fs = make_fs()
    _assert_same_fs(apply_condition(fs, get_protocol("clean")[0], np.random.default_rng(0)), fs)


def test_apply_condition_deterministic_per_seed_and_pure() -> None:
    fs = make_fs()
    before = {m: fs.feats[m].copy() for m in MODALITIES}
    cond = next(c for c in get_protocol("joint") if c.params == {"lambda": 0.5, "eta": 0.5})
    a = apply_condition(fs, cond, np.random.default_rng(11))
    b = apply_condition(fs, cond, np.random.default_rng(11))
    c = apply_condition(fs, cond, np.random.default_rng(12))
    _assert_same_fs(a, b)
    assert not _fs_equal(a, c)
    for m in MODALITIES:
        np.testing.assert_array_equal(fs.feats[m], before[m])
        assert not np.any(a.masks[m] & ~fs.masks[m])
    np.testing.assert_array_equal(a.labels, fs.labels)


def test_apply_condition_passes_noise_stats_per_modality() -> None:
    fs = make_fs()
    cond = next(c for c in get_protocol("noise") if c.params["lambda"] == 0.9)
    d_vis = SHAPES[Modality.VISION][1]
    stats = {Modality.TEXT: (0.0, 0.0), Modality.VISION: (np.full(d_vis, 2.0, np.float32), np.zeros(d_vis, np.float32))}
    out = apply_condition(fs, cond, np.random.default_rng(0), noise_stats=stats)
    for m, c in ((Modality.TEXT, 0.0), (Modality.VISION, 2.0)):  # zero std: only the attenuation remains
        x, k = fs.feats[m], fs.masks[m]
        np.testing.assert_allclose(out.feats[m][k], c + np.sqrt(0.1) * (x[k] - c), rtol=1e-5, atol=1e-6)
    assert not np.array_equal(out.feats[Modality.AUDIO], fs.feats[Modality.AUDIO])  # default (0, 1)


def test_modality_corruption_validates() -> None:
    with pytest.raises(ConfigError, match="random_missing"):
        ModalityCorruption("dropout", 0.5)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        ModalityCorruption("random_missing", 1.5)


# ---------------------------------------------------------------- sampler


@pytest.mark.parametrize("field", ["p_clean", "noise_max", "missing_max", "p_absent"])
@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_spectrum_config_rejects_out_of_range(field: str, bad: float) -> None:
    with pytest.raises(ConfigError, match=rf"{field}.*\[0, 1\]"):
        SpectrumConfig(**{field: bad})


def _clean_rows(drawn) -> np.ndarray:
    return np.all(
        [(drawn[m]["lambda"] == 0) & (drawn[m]["eta"] == 0) & ~drawn[m]["absent"] for m in MODALITIES], axis=0
    )


def test_sampler_clean_fraction_and_clean_rows_unchanged() -> None:
    fs = make_fs(n=4000, seed=1)
    out, drawn = sample_corruption(fs, SpectrumConfig(p_clean=0.25), np.random.default_rng(0))
    clean = _clean_rows(drawn)
    assert abs(clean.mean() - 0.25) < 0.03
    _assert_same_fs(out.subset(clean), fs.subset(clean))
    assert not _fs_equal(out.subset(~clean), fs.subset(~clean))


def test_sampler_severities_in_range_and_absence() -> None:
    fs = make_fs(n=4000, seed=2)
    cfg = SpectrumConfig(p_clean=0.0, noise_max=0.5, missing_max=0.3, p_absent=0.2)
    out, drawn = sample_corruption(fs, cfg, np.random.default_rng(0))
    for m in MODALITIES:
        lam, eta, absent = drawn[m]["lambda"], drawn[m]["eta"], drawn[m]["absent"]
        assert lam.shape == eta.shape == absent.shape == (4000,)
        assert absent.dtype == np.bool_
        assert lam.min() >= 0 and lam.max() <= 0.5 and lam.max() > 0.45
        assert eta.min() >= 0 and eta.max() <= 0.3 and eta.max() > 0.25
        assert abs(absent.mean() - 0.2) < 0.03
        assert not out.masks[m][absent].any() and not out.feats[m][absent].any()
        assert not np.any(out.masks[m] & ~fs.masks[m])
        assert np.all(out.feats[m][~out.masks[m]] == 0)


def test_sampler_extremes() -> None:
    fs = make_fs()
    out, _ = sample_corruption(fs, SpectrumConfig(p_clean=1.0), np.random.default_rng(0))
    _assert_same_fs(out, fs)
    none = SpectrumConfig(p_clean=0.0, noise_max=0.0, missing_max=0.0, p_absent=0.0)
    _assert_same_fs(sample_corruption(fs, none, np.random.default_rng(0))[0], fs)
    out, drawn = sample_corruption(fs, SpectrumConfig(p_clean=0.0, p_absent=1.0), np.random.default_rng(0))
    assert all(not out.masks[m].any() and drawn[m]["absent"].all() for m in MODALITIES)


def test_sampler_deterministic_per_seed() -> None:
    fs = make_fs()
    cfg = SpectrumConfig()
    a, da = sample_corruption(fs, cfg, np.random.default_rng(5))
    b, db = sample_corruption(fs, cfg, np.random.default_rng(5))
    c, _ = sample_corruption(fs, cfg, np.random.default_rng(6))
    _assert_same_fs(a, b)
    for m in MODALITIES:
        for key in ("lambda", "eta", "absent"):
            np.testing.assert_array_equal(da[m][key], db[m][key])
    assert not _fs_equal(a, c)
