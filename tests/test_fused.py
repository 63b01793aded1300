"""The numba kernels (models/selection/fused.py) against the numpy paths they replace: the
supermask draw and product and its backward bit for bit, the slot-ps pick equal up to the exp's
last-ulp rounding (and its own distribution), and the layers giving the same results with the
kernels on and off. No timings here."""

import importlib.machinery
import sys
import types

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from hiddenlab.models.selection import fused
from hiddenlab.models.selection.edgepopup import EdgePopupLayer
from hiddenlab.models.selection.kernels import (HOST_DRAW_MIN, SEED_WORDS, apply_mask,
                                                host_generator, host_seed)
from hiddenlab.models.selection.layers import LayerSpec
from hiddenlab.models.selection.slot import FactoredSlotLayer, SlotLayer, draw_k_first
from hiddenlab.models.selection.supermask import SupermaskLayer, host_bernoulli

pytestmark = pytest.mark.skipif(not fused.available(), reason="numba is not installed")


def _edge_probabilities(n: int, seed: int) -> torch.Tensor:
    """Sigmoids of spread logits plus the cases the draw must get right: 0, 1, NaN, p on a
    byte's edge (256 p an integer: the second uniform decides), the smallest and largest."""
    g = torch.Generator().manual_seed(seed)
    p = torch.sigmoid(torch.randn(n, generator=g) * 3)
    edges = [0.0, 1.0, float("nan"), 3 / 256, 128 / 256, 255 / 256, 1e-7, 1 - 1e-3, 2.0**-9]
    p[:len(edges) * 4] = torch.tensor(edges).repeat(4)
    return p


@pytest.mark.parametrize("n", [HOST_DRAW_MIN, 100_003, 1_000_000])
def test_bernoulli_product_is_host_bernoulli_and_apply_mask_bit_for_bit(n):
    p, w = _edge_probabilities(n, n), torch.randn(n, generator=torch.Generator().manual_seed(1))
    w[:5] = -w[:5].abs()                                   # w * 0 keeps w's sign: -0.0
    torch.manual_seed(7)
    mask = host_bernoulli(p.numpy(), host_generator())
    expected = apply_mask(w, torch.from_numpy(mask))
    after = torch.rand(2)
    torch.manual_seed(7)
    out, got = fused.bernoulli_product(p.numpy(), w.numpy(), host_seed())
    assert torch.equal(torch.rand(2), after)      # SEED_WORDS numbers of torch's stream, as before
    torch.manual_seed(7)
    torch.randint(0, 2**63 - 1, (SEED_WORDS,), dtype=torch.int64)
    assert torch.equal(torch.rand(2), after)
    assert np.array_equal(got, mask)
    assert np.array_equal(out.view(np.int32), expected.numpy().view(np.int32))
    assert not got[0::9][:4].any() and got[1::9][:4].all() and not got[2::9][:4].any()


def test_bernoulli_product_frequencies():
    """The second uniform matters: p just above a byte edge is drawn at p, not at the edge."""
    n = 2_000_000
    for value in (1 / 256 + 1e-4, 0.5 + 3e-3, 0.3):
        p = np.full(n, value, dtype=np.float32)
        torch.manual_seed(3)
        _, mask = fused.bernoulli_product(p, np.ones(n, dtype=np.float32), host_seed())
        sd = np.sqrt(n * value * (1 - value))
        assert abs(mask.sum() - n * value) < 4.5 * sd, value


def test_sigmoid_mask_grad_is_torchs_backward_bit_for_bit():
    g = torch.Generator().manual_seed(2)
    grad, w = torch.randn(50_000, generator=g), torch.randn(50_000, generator=g) * 1e-3
    p = torch.sigmoid(torch.randn(50_000, generator=g) * 20)    # saturated ends included
    grad[:4] = torch.tensor([float("inf"), float("nan"), -0.0, 1e-38])
    p[4:8] = torch.tensor([0.0, 1.0, 0.5, 1e-30])
    expected = torch.ops.aten.sigmoid_backward(grad * w, p)
    got = fused.sigmoid_mask_grad(grad.numpy(), w.numpy(), p.numpy())
    assert np.array_equal(got.view(np.int32), expected.numpy().view(np.int32))


def test_sign_mask_grad_is_torchs_backward_bit_for_bit():
    g = torch.Generator().manual_seed(4)
    grad, w, s = (torch.randn(40_000, generator=g) for _ in range(3))
    s[:6] = torch.tensor([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e-45])
    grad[6:9] = torch.tensor([float("nan"), -0.0, float("inf")])
    expected = (grad * w).mul_(s.sgn())
    got = fused.sign_mask_grad(grad.numpy(), w.numpy(), s.numpy())
    assert np.array_equal(got.view(np.int32), expected.numpy().view(np.int32))


def _supermask_step(on: bool, monkeypatch, scale: bool = False):
    monkeypatch.setattr(fused, "ENABLED", on)
    g = torch.Generator().manual_seed(5)
    shape = (300, 784)                                       # a host-draw layer
    layer = SupermaskLayer(LayerSpec(shape), torch.randn(shape, generator=g),
                           torch.randn(shape, generator=g), scale=scale).train()
    x, upstream = torch.randn(16, 784, generator=g), torch.randn(16, 300, generator=g)
    torch.manual_seed(9)
    out = layer(x)
    out.backward(upstream)
    return out.detach(), layer.scores.grad, torch.rand(3)


@pytest.mark.parametrize("scale", [False, True])
def test_supermask_layer_is_the_same_with_and_without_the_kernels(monkeypatch, scale):
    fast = _supermask_step(True, monkeypatch, scale)
    slow = _supermask_step(False, monkeypatch, scale)
    for a, b in zip(fast, slow):                             # output, score gradient, stream
        assert torch.equal(a, b)


@pytest.mark.parametrize("use_abs", [True, False])
def test_edgepopup_layer_is_the_same_with_and_without_the_kernels(monkeypatch, use_abs):
    results = []
    for on in (True, False):
        monkeypatch.setattr(fused, "ENABLED", on)
        g = torch.Generator().manual_seed(6)
        shape = (100, 300)
        layer = EdgePopupLayer(LayerSpec(shape), torch.randn(shape, generator=g),
                               torch.randn(shape, generator=g), 0.3, use_abs).train()
        x, upstream = torch.randn(8, 300, generator=g), torch.randn(8, 100, generator=g)
        out = layer(x)
        out.backward(upstream)
        results.append((out.detach(), layer.scores.grad))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_a_numba_that_does_not_import_leaves_the_numpy_paths(monkeypatch):
    with_kernels = _supermask_step(True, monkeypatch)
    broken = types.ModuleType("numba")      # importable, but without njit: fused_kernels fails
    broken.__spec__ = importlib.machinery.ModuleSpec("numba", None)
    monkeypatch.setitem(sys.modules, "numba", broken)
    monkeypatch.delitem(sys.modules, "hiddenlab.models.selection.fused_kernels", raising=False)
    fused._kernels.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="numba does not import"):
            assert not fused.available()
        for a, b in zip(_supermask_step(True, monkeypatch), with_kernels):
            assert torch.equal(a, b)        # the numpy path, the same bits
    finally:
        fused._kernels.cache_clear()        # the real kernels again for the tests after this


# --- slot-ps -------------------------------------------------------------------------------------
def test_exp_block_within_an_ulp():
    x = np.concatenate([-np.linspace(0, 87, 2_000_001, dtype=np.float32),
                        np.float32([-87.5, -100, -np.inf, np.nan, -0.0])])
    got = fused.exp_nonpositive(x)
    exact = np.exp(x[:-5].astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    err = np.abs(got[:-5] - exact) / ulp
    assert err.max() <= 1.0, err.max()                      # within one ulp everywhere
    assert (got[-5:-2] == 0).all() and np.isnan(got[-2]) and got[-1] == 1


def _pick_inputs(K: int, n: int, seed: int):
    g = np.random.default_rng(seed)
    s0 = (g.standard_normal((K, n)) * 3).astype(np.float32)
    w = g.standard_normal((K, n)).astype(np.float32)
    gamma = (g.standard_normal(n) * 0.5).astype(np.float32)
    u = g.random(n, dtype=np.float32)
    u[:2] = 0.0, 1.0 - 2.0**-24
    if K > 1:
        s0[0, 2:6] = -np.inf                                 # zero mass: never picked
    s0[:, 6:9] = 0.0                                         # ties
    w[:, 6:9] = 1.0
    return s0, w, gamma, u


@pytest.mark.parametrize("K", [1, 2, 8, 17])
def test_categorical_pick_is_the_numpy_draw(K):
    n, alpha = 50_001, np.float32(0.8)
    s0, w, gamma, u = _pick_inputs(K, n, K)
    logits = s0 * alpha + w * gamma                           # the numpy path's float32 scores
    expected = draw_k_first(logits.copy(), u)
    index, chosen = fused.categorical_pick(s0, w, alpha, gamma, u)
    assert index.dtype == np.int64 and ((0 <= index) & (index < K)).all()
    assert np.array_equal(chosen, w[index, np.arange(n)])
    # only the exp's last-ulp rounding can move a pick: u within a rounding of a boundary
    assert (index != expected).sum() <= 2
    assert K == 1 or (index[2:6] != 0).all()
    assert fused.categorical_pick(s0, w, alpha, gamma, u, want_index=False)[0] is None
    assert np.array_equal(fused.categorical_pick(s0, w, alpha, gamma, u, False)[1], chosen)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_categorical_pick_refuses_scores_that_are_not_finite(bad):
    s0, w, gamma, u = _pick_inputs(4, 3000, 1)
    gamma[2999] = bad
    assert fused.categorical_pick(s0, w, np.float32(1.0), gamma, u) is None


@pytest.mark.parametrize("probs", [[0.7, 0.2, 0.05, 0.05], [0.5, 0.0, 0.25, 0.125, 0.125]])
def test_categorical_pick_distribution_chi_square(probs):
    probs = np.asarray(probs)
    n, K = 200_000, len(probs)
    with np.errstate(divide="ignore"):
        s0 = np.repeat(np.log(probs).astype(np.float32)[:, None], n, 1)
    w = np.ones((K, n), dtype=np.float32)
    torch.manual_seed(11)
    u = torch.rand(n).numpy()
    index, _ = fused.categorical_pick(s0, w, np.float32(1.0), np.zeros(n, np.float32), u)
    counts = np.bincount(index, minlength=K)
    assert counts[probs == 0].sum() == 0
    assert chisquare(counts[probs > 0], probs[probs > 0] * n).pvalue > 1e-3


def _ps_layer(shape, K=8):
    g = torch.Generator().manual_seed(3)
    explicit = SlotLayer(LayerSpec(shape), torch.randn(*shape, K, generator=g),
                         torch.randn(*shape, K, generator=g), "sample", "argmax")
    layer = FactoredSlotLayer.from_layer(explicit).train()
    with torch.no_grad():
        layer.alpha.fill_(0.9)
        layer.gamma.normal_(0, 0.3, generator=g)
    return layer


@pytest.mark.parametrize("shape", [(30, 40), (300, 200)])   # torch.rand / host uniforms
def test_factored_ps_layer_draws_the_same_with_and_without_the_kernels(shape, monkeypatch):
    layer = _ps_layer(shape)
    draws = {}
    for on in (True, False):
        monkeypatch.setattr(fused, "ENABLED", on)
        torch.manual_seed(4)
        index = layer.sample()
        torch.manual_seed(4)
        chosen = layer.compute_weight().detach()
        draws[on] = index, chosen, torch.rand(2)
        assert torch.equal(chosen, layer.weight.gather(-1, index.unsqueeze(-1)).squeeze(-1))
    (i1, c1, r1), (i0, c0, r0) = draws[True], draws[False]
    assert torch.equal(r1, r0)                                # the same uniforms consumed
    assert (i1 != i0).sum() <= 2 and (c1 != c0).sum() <= 2    # exp rounding only
