"""Fast paths select exactly what the straightforward formulations select, and the fast layers
compute what the reference formulations (benchmarks/reference_impls.py) compute: forward outputs
and score gradients, bit for bit, on the same weights and scores. No timings here."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from reference_impls import (  # noqa: E402
    RefEdgePopup,
    RefSlot,
    RefSupermask,
    one_hot_select,
    reference_model,
    sort_scatter_topk,
)

from hiddenlab.models import build_model  # noqa: E402
from hiddenlab.models.selection import SelectionLayer  # noqa: E402
from hiddenlab.models.selection.layers import LayerSpec  # noqa: E402
from hiddenlab.models.selection.edgepopup import (  # noqa: E402
    THRESHOLD_WAYS,
    EdgePopupLayer,
    GlobalTopK,
    kept_count,
    topk_mask,
)
from hiddenlab.models.selection.slot import SlotGather, SlotLayer  # noqa: E402
from hiddenlab.models.selection.supermask import SupermaskLayer, bernoulli_mask  # noqa: E402
from hiddenlab.config import TrialConfig  # noqa: E402


def _score_sets(g):
    """Continuous, tied, all-equal, signed and zero-heavy scores of several sizes."""
    yield torch.randn(1001, generator=g)
    yield torch.randn(64, 3, 3, 3, generator=g).abs()
    yield torch.randint(0, 4, (10, 9), generator=g).float()  # many ties
    yield torch.randint(-3, 4, (257,), generator=g).float()  # ties, negatives, zeros
    yield torch.zeros(37)  # all equal: the first ones are kept
    yield torch.cat([torch.zeros(50), -torch.zeros(50)])  # +0.0 and -0.0 compare equal
    yield torch.randn(200_003, generator=g)  # larger than a toy
    yield torch.randn(513, generator=g, dtype=torch.float64)
    yield (torch.randn(300, generator=g) * 4).round() / 4  # coarse grid: ties at the threshold


@pytest.mark.parametrize("threshold_by", THRESHOLD_WAYS)
def test_topk_mask_equals_sort_scatter(threshold_by):
    g = torch.Generator().manual_seed(0)
    for scores in _score_sets(g):
        for k in (0.01, 0.1, 0.3, 0.5, 0.77, 0.999, 1.0):
            mask = topk_mask(scores, k, threshold_by)
            assert mask.dtype == torch.bool and mask.shape == scores.shape
            assert int(mask.sum()) == kept_count(scores.numel(), k)
            assert torch.equal(mask, sort_scatter_topk(scores, k)), (threshold_by, k, scores)


@pytest.mark.parametrize("threshold_by", THRESHOLD_WAYS)
def test_topk_mask_by_abs_equals_sort_scatter_of_abs(threshold_by):
    g = torch.Generator().manual_seed(1)
    for scores in _score_sets(g):
        for k in (0.05, 0.5, 0.77, 1.0):
            mask = topk_mask(scores, k, threshold_by, by_abs=True)
            assert torch.equal(mask, sort_scatter_topk(scores.abs(), k)), (threshold_by, k, scores)
    # +-x tie on |x|: the lower index wins whatever the sign
    s = torch.tensor([3.0, -2.0, 2.0, -1.0, 1.0, -0.0, 0.0, -3.0])
    for k, expect in ((0.25, [0, 7]), (0.375, [0, 1, 7]), (0.625, [0, 1, 2, 3, 7])):
        assert topk_mask(s, k, threshold_by, by_abs=True).nonzero().view(-1).tolist() == expect


def test_topk_mask_ties_straddling_threshold_keep_lower_indices():
    # 6 values above, 4 equal to the threshold, room for 2 of them: indices 1 and 3 (the first).
    s = torch.tensor([0.0, 1.0, 5.0, 1.0, 6.0, 1.0, 7.0, 8.0, 1.0, 9.0, 9.5, 0.5])
    for way in THRESHOLD_WAYS:
        m = topk_mask(s, 8 / 12, way)
        assert m.nonzero().view(-1).tolist() == [1, 2, 3, 4, 6, 7, 9, 10], way


def test_global_topk_equals_sort_scatter_over_all_layers():
    torch.manual_seed(0)
    layers = [EdgePopupLayer(LayerSpec(shape), torch.randn(shape),
                             torch.randint(-5, 6, shape).float(), 0.4)  # ties across layers
              for shape in ((6, 8), (4, 6), (3, 4))]
    model = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2])
    GlobalTopK(model, 0.4)
    model(torch.randn(2, 8))
    flat = torch.cat([l.scores.detach().abs().reshape(-1) for l in layers])
    got = torch.cat([l.forced_mask.reshape(-1) for l in layers])
    assert torch.equal(got, sort_scatter_topk(flat, 0.4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bernoulli_host_draw_has_the_bernoulli_distribution(dtype):
    """Each p drawn 2 million times. (k + r) / 256 puts a quarter to three quarters of the mass
    of a byte in the second uniform: a draw that settled those by the byte alone would be off by
    r / 256, 5 standard deviations and more here. Fixed seeds: the test cannot flake."""
    per = 2_000_000
    ps = [(100 + 0.25) / 256, (7 + 0.5) / 256, (200 + 0.75) / 256, 0.5, 1e-3, 1 - 1e-3,
          17 / 256, 1e-7]
    p = torch.tensor(ps, dtype=dtype).repeat_interleave(per)
    torch.manual_seed(11)
    hits = bernoulli_mask(p).view(len(ps), per).sum(1).double().numpy()
    for value, count in zip(ps, hits):
        sd = (per * value * (1 - value)) ** 0.5
        assert abs(count - per * value) < 4.5 * sd + 1e-9, (value, count / per)


@pytest.mark.parametrize("rows", [1000, 20_000])   # torch's draw, then the host draw
def test_bernoulli_draw_edges(rows):
    p = torch.tensor([0.0, 1.0, float("nan"), 0.0, 1.0] * rows)
    torch.manual_seed(0)
    mask = bernoulli_mask(p).view(rows, 5)
    assert not mask[:, 0].any() and mask[:, 1].all() and not mask[:, 2].any()
    assert not mask[:, 3].any() and mask[:, 4].all()


# --- layers against the reference formulations ---------------------------------------------------
GEOMETRIES = [((6, 3, 3, 3), 1, 1, (2, 3, 7, 7)), ((8, 4, 1, 1), 2, 0, (2, 4, 6, 6)),
              ((7, 12), 1, 0, (5, 12))]


def _pair_run(fast, ref, x, index=None):
    """Forward and backward both layers on the same input and upstream gradient."""
    out_f = fast(x)
    out_r = ref(x) if index is None else ref(x, index)
    upstream = torch.randn(out_f.shape, generator=torch.Generator().manual_seed(7))
    out_f.backward(upstream)
    out_r.backward(upstream)
    return out_f, out_r


@pytest.mark.parametrize("use_abs", [True, False])
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("k", [0.3, 0.5, 0.9])
def test_edgepopup_layer_equals_reference_getsubnet(geometry, use_abs, k):
    shape, stride, padding, xshape = geometry
    g = torch.Generator().manual_seed(1)
    weight, scores = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    assert scores.abs().unique().numel() == scores.numel()  # no ties: the reference's sort is unstable
    spec = LayerSpec(shape, stride, padding)
    fast = EdgePopupLayer(spec, weight, scores.clone(), k, use_abs)
    ref = RefEdgePopup(weight, scores.clone(), k, stride, padding, use_abs)
    out_f, out_r = _pair_run(fast, ref, torch.randn(xshape, generator=g))
    assert torch.equal(fast.effective_weight().detach(), ref.effective_weight().detach())
    assert torch.equal(out_f, out_r)
    assert torch.equal(fast.scores.grad, ref.scores.grad)


def same_draw(monkeypatch):
    """The reference's `torch.bernoulli` made hiddenlab's draw (the host draw is not torch's
    stream): both formulations then see the same mask from the same seed."""
    monkeypatch.setattr(torch, "bernoulli", lambda p: bernoulli_mask(p).to(p.dtype))


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_supermask_layer_equals_reference(geometry, monkeypatch):
    same_draw(monkeypatch)
    shape, stride, padding, xshape = geometry
    g = torch.Generator().manual_seed(2)
    weight, logits = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    fast = SupermaskLayer(LayerSpec(shape, stride, padding), weight, logits.clone(), "expected")
    ref = RefSupermask(weight, logits.clone(), stride, padding)
    x = torch.randn(xshape, generator=g)
    torch.manual_seed(3)
    out_f = fast(x)
    torch.manual_seed(3)  # the same Bernoulli draw
    out_r = ref(x)
    upstream = torch.randn(out_f.shape, generator=g)
    out_f.backward(upstream)
    out_r.backward(upstream)
    assert torch.equal(out_f, out_r)
    assert torch.equal(fast.scores.grad, ref.scores.grad)


def _slot_pair(shape, stride, padding, K, ties, mode="argmax"):
    g = torch.Generator().manual_seed(4)
    values = torch.randn(*shape, K, generator=g)
    scores = (torch.randint(0, 3, (*shape, K), generator=g).float() if ties
              else torch.randn(*shape, K, generator=g))
    fast = SlotLayer(LayerSpec(shape, stride, padding), values, scores.clone(), mode, "argmax")
    ref = RefSlot(values, scores.clone(), mode, stride, padding)
    return fast, ref, g


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("K", [1, 2, 8])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_slot_gs_layer_equals_reference_one_hot(geometry, K, ties):
    shape, stride, padding, xshape = geometry
    fast, ref, g = _slot_pair(shape, stride, padding, K, ties)
    s = fast.scores.detach()
    # ties: the first (lowest-index) maximum, spelled out
    first_max = (s == s.amax(-1, keepdim=True)).float().argmax(-1)
    assert torch.equal(fast.index(), first_max)
    assert torch.equal(fast.compute_weight().detach(), one_hot_select(fast.weight, first_max))
    out_f, out_r = _pair_run(fast, ref, torch.randn(xshape, generator=g))
    assert torch.equal(out_f, out_r)
    assert torch.equal(fast.scores.grad, ref.scores.grad)
    assert fast.scores.grad.shape == (*shape, K)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_slot_ps_gather_equals_one_hot_for_one_draw(geometry):
    shape, stride, padding, xshape = geometry
    fast, ref, g = _slot_pair(shape, stride, padding, 8, False, mode="sample")
    torch.manual_seed(5)
    index = fast.index()  # one Gumbel-max draw, fed to both formulations
    x = torch.randn(xshape, generator=g)
    w = SlotGather.apply(fast.weight, fast.scores, index)
    out_f = F.conv2d(x, w, None, stride, padding) if len(shape) == 4 else F.linear(x, w)
    out_r = ref(x, index)
    upstream = torch.randn(out_f.shape, generator=g)
    out_f.backward(upstream)
    out_r.backward(upstream)
    assert torch.equal(out_f, out_r)
    assert torch.equal(fast.scores.grad, ref.scores.grad)


@pytest.mark.parametrize("method", ["edgepopup", "supermask", "slot-gs"])
def test_whole_model_equals_reference_model(method, monkeypatch):
    same_draw(monkeypatch)
    # slot: Adam keeps explicit scores (SGD factors them; tests/test_perf_slot.py)
    kw = dict(K=4, optimizer="adam") if method.startswith("slot") else {}
    cfg = TrialConfig(method=method, model="cifar-resnet18", width_mult=0.125, **kw)
    torch.manual_seed(0)
    model = build_model(cfg, (3, 16, 16), 10)
    ref = reference_model(model)
    fast_layers = [m for m in model.modules() if isinstance(m, SelectionLayer)]
    ref_layers = [m for m in ref.modules() if hasattr(m, "scores")]
    assert len(fast_layers) == len(ref_layers)
    for a, b in zip(fast_layers, ref_layers):
        assert a.weight is b.weight  # frozen weights shared, not copied
        assert a.scores is not b.scores and torch.equal(a.scores, b.scores)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    out_f = model(x)
    torch.manual_seed(2)
    out_r = ref(x)
    assert torch.equal(out_f, out_r)
    out_f.square().sum().backward()
    out_r.square().sum().backward()
    for a, b in zip(fast_layers, ref_layers):
        torch.testing.assert_close(a.scores.grad, b.scores.grad, rtol=0, atol=0)


# --- masks computed once per step, cached for evaluation -----------------------------------------
@pytest.mark.parametrize("method", ["edgepopup", "supermask", "slot-gs"])
def test_selection_computed_once_per_step_and_cached_in_eval(method, monkeypatch):
    kw = dict(K=4) if method.startswith("slot") else {}
    torch.manual_seed(0)
    model = build_model(TrialConfig(method=method, model="conv2", width_mult=0.125, **kw),
                        (3, 8, 8), 10)
    layers = [m for m in model.modules() if isinstance(m, SelectionLayer)]
    calls = {"n": 0}
    cls = type(layers[0])
    original = cls.compute_weight

    def counting(self):
        calls["n"] += 1
        return original(self)

    monkeypatch.setattr(cls, "compute_weight", counting)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(3, 3, 8, 8)
    for step in range(2):
        model.train()
        calls["n"] = 0
        opt.zero_grad(set_to_none=True)
        model(x).sum().backward()
        opt.step()
        assert calls["n"] == len(layers)  # once per layer per training step
        model.eval()
        calls["n"] = 0
        with torch.no_grad():
            a = model(x)
            assert calls["n"] == len(layers)  # first evaluation after a step: recomputed
            b = model(x)
        assert calls["n"] == len(layers)  # second: served from the cache
        assert torch.equal(a, b)
