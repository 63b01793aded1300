"""Selection layers: exact counts, tie-breaking, straight-through gradients against hand-built
autograd expressions, frozen weights, slot sampling frequencies, eval modes."""

import math

import pytest
import torch
import torch.nn.functional as F

from hiddenlab.models.selection.layers import LayerSpec, selection_histograms
from hiddenlab.models.selection.edgepopup import EdgePopupLayer, GlobalTopK, kept_count, topk_mask
from hiddenlab.models.selection.slot import SlotLayer
from hiddenlab.models.selection.supermask import SupermaskLayer, bernoulli_mask


def reference_topk(scores: torch.Tensor, k: float) -> torch.Tensor:
    """The straightforward formulation: stable sort descending, keep the first n - int((1-k)n)."""
    flat = scores.reshape(-1)
    n = flat.numel()
    order = torch.sort(-flat, stable=True).indices
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[: n - int((1 - k) * n)]] = True
    return mask.view_as(scores)


@pytest.mark.parametrize("threshold_by", ["sort", "kthvalue"])
@pytest.mark.parametrize("k", [0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999, 1.0])
def test_topk_matches_reference_and_count(k, threshold_by):
    g = torch.Generator().manual_seed(int(k * 1000))
    for n in (1, 7, 100, 1001):
        s = torch.randn(n, generator=g)
        m = topk_mask(s, k, threshold_by)
        assert int(m.sum()) == kept_count(n, k) == n - int((1 - k) * n)
        assert torch.equal(m, reference_topk(s, k))


@pytest.mark.parametrize("threshold_by", ["sort", "kthvalue"])
def test_topk_ties_broken_by_index(threshold_by):
    g = torch.Generator().manual_seed(0)
    for k in (0.2, 0.5, 0.75):
        s = torch.randint(0, 4, (10, 9), generator=g).float()  # many ties
        m = topk_mask(s, k, threshold_by)
        assert torch.equal(m, reference_topk(s, k))
    s = torch.zeros(10)  # all equal: the first ones are kept
    assert topk_mask(s, 0.3, threshold_by).tolist() == [True] * 3 + [False] * 7


def _ep_layer(use_abs=True, k=0.5, conv=True):
    torch.manual_seed(0)
    shape = (4, 3, 3, 3) if conv else (5, 6)
    spec = LayerSpec(shape, 1, 1) if conv else LayerSpec(shape)
    return EdgePopupLayer(spec, torch.randn(shape), torch.randn(shape), k, use_abs)


@pytest.mark.parametrize("use_abs", [True, False])
@pytest.mark.parametrize("conv", [True, False])
def test_edgepopup_straight_through_gradient(use_abs, conv):
    layer = _ep_layer(use_abs, conv=conv)
    x = torch.randn(2, 3, 5, 5) if conv else torch.randn(2, 6)
    layer(x).pow(2).sum().backward()
    # hand-built: mask as a leaf; dL/dS = dL/dmask * d(rank)/dS
    ranked = layer.scores.detach().abs() if use_abs else layer.scores.detach()
    mask = reference_topk(ranked, 0.5).float().requires_grad_()
    w = layer.weight * mask
    out = F.conv2d(x, w, None, 1, 1) if conv else F.linear(x, w)
    out.pow(2).sum().backward()
    expected = mask.grad * (torch.sign(layer.scores.detach()) if use_abs else 1)
    torch.testing.assert_close(layer.scores.grad, expected)
    assert (layer.scores.grad != 0).float().mean() > 0.9  # pruned weights' scores learn too


def test_edgepopup_weights_frozen_scores_move_and_eval_cached():
    layer = _ep_layer()
    w0, s0 = layer.weight.clone(), layer.scores.detach().clone()
    opt = torch.optim.SGD(layer.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)
    assert [p is layer.scores for p in layer.parameters()] == [True]
    for _ in range(3):
        opt.zero_grad()
        layer(torch.randn(2, 3, 5, 5)).sum().backward()
        opt.step()
    assert torch.equal(layer.weight, w0)
    assert not torch.equal(layer.scores.detach(), s0)
    layer.eval()
    a = layer.effective_weight()
    assert layer.effective_weight() is a  # cached while scores are unchanged
    with torch.no_grad():
        layer.scores.mul_(-1.0).add_(0.1)
    assert layer.effective_weight() is not a  # an in-place update invalidates the cache


def test_global_topk_exact_count_across_layers():
    torch.manual_seed(0)
    l1 = EdgePopupLayer(LayerSpec((4, 8)), torch.randn(4, 8), torch.randn(4, 8) * 3, 0.3)
    l2 = EdgePopupLayer(LayerSpec((2, 4)), torch.randn(2, 4), torch.randn(2, 4), 0.3)
    model = torch.nn.Sequential(l1, torch.nn.ReLU(), l2)
    GlobalTopK(model, 0.3)
    model(torch.randn(1, 8)).sum().backward()
    kept = int(l1.forced_mask.sum() + l2.forced_mask.sum())
    assert kept == kept_count(40, 0.3)
    both = torch.cat([l1.scores.detach().abs().reshape(-1), l2.scores.detach().abs().reshape(-1)])
    ref = reference_topk(both, 0.3)
    assert torch.equal(torch.cat([l1.forced_mask.reshape(-1), l2.forced_mask.reshape(-1)]), ref)
    # layers with larger scores keep a larger share than a per-layer top-k would give them
    assert l1.forced_mask.float().mean() > l2.forced_mask.float().mean()


def _slot_layer(train_mode="argmax", eval_mode="argmax", K=4):
    torch.manual_seed(1)
    shape = (3, 2, 3, 3)
    return SlotLayer(LayerSpec(shape, 1, 1), torch.randn(*shape, K), torch.randn(*shape, K),
                     train_mode, eval_mode)


def test_slot_gs_picks_argmax_and_gradient_reaches_all_k():
    layer = _slot_layer()
    x = torch.randn(2, 2, 4, 4)
    layer(x).pow(2).sum().backward()
    idx = layer.scores.detach().argmax(-1)
    chosen = torch.take_along_dim(layer.weight, idx.unsqueeze(-1), -1).squeeze(-1)
    torch.testing.assert_close(layer.materialize(), chosen)
    # hand-built: one-hot selection (the reference's formulation) with W_eff as a leaf
    w_eff = chosen.clone().requires_grad_()
    F.conv2d(x, w_eff, None, 1, 1).pow(2).sum().backward()
    expected = w_eff.grad.unsqueeze(-1) * layer.weight
    torch.testing.assert_close(layer.scores.grad, expected)
    assert (layer.scores.grad != 0).all()  # every one of the K scores gets a gradient


def test_slot_ps_samples_softmax_frequencies():
    K, draws = 4, 20000
    scores = torch.tensor([1.0, 0.0, -1.0, 0.5])
    layer = SlotLayer(LayerSpec((draws, 1)), torch.arange(K).float().expand(draws, 1, K).clone(),
                      scores.expand(draws, 1, K).clone(), "sample", "argmax")
    torch.manual_seed(0)
    picks = layer.compute_weight().reshape(-1).long()  # values are the indices themselves
    freq = torch.bincount(picks, minlength=K).float() / draws
    expected = torch.softmax(scores, 0)
    assert torch.allclose(freq, expected, atol=4 * math.sqrt(0.25 / draws) + 1e-3), (freq, expected)
    layer.eval()
    assert torch.equal(layer.materialize().reshape(-1), torch.zeros(draws))  # argmax = index 0
    layer.eval_mode = "sample"
    assert not torch.equal(layer.effective_weight(), layer.effective_weight())


def test_slot_values_frozen_after_steps():
    layer = _slot_layer("sample", "argmax")
    v0 = layer.weight.clone()
    opt = torch.optim.SGD(layer.parameters(), lr=10.0, momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        layer(torch.randn(2, 2, 4, 4)).sum().backward()
        opt.step()
    assert torch.equal(layer.weight, v0)


def test_supermask_gradient_and_eval_modes():
    torch.manual_seed(2)
    shape = (5, 6)
    layer = SupermaskLayer(LayerSpec(shape), torch.randn(shape), torch.randn(shape), "expected")
    x = torch.randn(3, 6)
    torch.manual_seed(3)
    layer(x).pow(2).sum().backward()
    torch.manual_seed(3)  # the same Bernoulli draw, by hand
    logits = layer.scores.detach().clone().requires_grad_()
    p = torch.sigmoid(logits)
    mask = bernoulli_mask(p.detach()).float().requires_grad_()
    F.linear(x, layer.weight * mask).pow(2).sum().backward()
    expected = mask.grad * p.detach() * (1 - p.detach())  # through the sigmoid
    torch.testing.assert_close(layer.scores.grad, expected)
    layer.eval()
    torch.testing.assert_close(layer.materialize(), layer.weight * (layer.scores > 0))
    assert layer.kept_count() == float((layer.scores > 0).sum())
    layer.eval_mode = "sample"
    a, b = layer.effective_weight(), layer.effective_weight()
    assert not torch.equal(a, b)


def test_supermask_dynamic_scaling():
    shape = (10, 10)
    layer = SupermaskLayer(LayerSpec(shape), torch.ones(shape), torch.full(shape, -5.0), "expected",
                           scale=True)
    with torch.no_grad():
        layer.scores[:2] = 5.0  # 20 of 100 kept
    layer.eval()
    w = layer.materialize()
    assert float(w.sum()) == pytest.approx(100.0)  # 20 kept x (100 / 20)


def test_selection_histograms_count_the_selected_and_the_others():
    """Against the direct formulation: the chosen values, and every other frozen value."""
    from hiddenlab.config import TrialConfig
    from hiddenlab.models import build_model
    from hiddenlab.models.selection import selection_layers

    for method, kw in (("edgepopup", {}), ("slot-gs", dict(K=4)), ("supermask", {})):
        torch.manual_seed(0)  # slot-gs under SGD: factored layers
        model = build_model(TrialConfig(method=method, model="lenet-300-100", width_mult=0.1,
                                        **kw), (1, 8, 8), 10)
        layers = selection_layers(model)
        out = selection_histograms(layers, bins=7)
        for name, layer in layers:
            values, sel = layer.frozen_values().float(), layer.selection()
            chosen = (values[sel] if sel.dtype == torch.bool
                      else values.gather(-1, sel.unsqueeze(-1)).squeeze(-1))
            if sel.dtype == torch.bool:
                others = values[~sel]
            else:
                onehot = torch.zeros_like(values, dtype=torch.bool).scatter_(
                    -1, sel.unsqueeze(-1), True)
                others = values[~onehot]
            lo, hi = float(values.min()), float(values.max())
            assert out[name]["selected"] == torch.histc(chosen, 7, lo, hi).long().tolist()
            assert out[name]["unselected"] == torch.histc(others, 7, lo, hi).long().tolist()
            assert sum(out[name]["selected"]) == chosen.numel() > 0
