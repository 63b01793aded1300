"""Host kernels and the edge-popup / supermask fast paths: each returns exactly what the plain
torch expression it replaces returns. No timings here."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from reference_impls import sort_scatter_topk  # noqa: E402

from hiddenlab.models.selection.edgepopup import topk_mask  # noqa: E402
from hiddenlab.models.selection.kernels import (HOST_DRAW_MIN, SEED_WORDS, apply_mask,  # noqa: E402
                                                host_ok, tune_host_allocator)
from hiddenlab.models.selection.supermask import (SigmoidMaskedWeight,  # noqa: E402
                                                  bernoulli_mask, expected_mask)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_apply_mask_is_weight_times_mask_bit_for_bit(dtype):
    g = torch.Generator().manual_seed(0)
    for shape in ((7,), (5, 9), (4, 3, 3, 3)):
        w = torch.randn(shape, generator=g, dtype=dtype)
        w.view(-1)[:2] = torch.tensor([-0.0, 0.0], dtype=dtype)
        m = torch.rand(shape, generator=g) < 0.5
        got, ref = apply_mask(w, m), w * m
        assert got.dtype == ref.dtype and got.shape == ref.shape
        assert torch.equal(got, ref) and torch.equal(got.signbit(), ref.signbit())
        assert got.data_ptr() != w.data_ptr()  # a fresh tensor
    strided = torch.randn(6, 8)[:, ::2]  # not numpy's to hold: torch's own product
    mask = torch.ones(6, 4, dtype=torch.bool)
    assert not host_ok(strided) and torch.equal(apply_mask(strided, mask), strided)


def test_tune_host_allocator_is_idempotent():
    first = tune_host_allocator()
    assert first is tune_host_allocator()
    if sys.platform.startswith("linux"):
        assert first  # glibc's mallopt accepted both settings


def _drifting_scores(g, steps: int):
    """A training-like sequence: small moves every step, a few jumps, then many ties."""
    s = torch.randn(20_011, generator=g)  # above the band's minimum size
    for step in range(steps):
        s = s + torch.randn(s.shape, generator=g) * 1e-3
        if step == 10:
            s = s * 3  # the threshold jumps far outside any band
        if step == 20:
            s = (s * 4).round() / 4  # a coarse grid: ties straddle the threshold
        yield s


@pytest.mark.parametrize("by_abs", [True, False])
@pytest.mark.parametrize("k", [0.05, 0.5, 0.9])
def test_pivot_band_topk_equals_sort_scatter_every_step(by_abs, k):
    g = torch.Generator().manual_seed(3)
    pivot: dict = {}
    bands = 0
    for scores in _drifting_scores(g, 30):
        width = pivot.get("width", 0.0)
        mask = topk_mask(scores, k, "host", by_abs=by_abs, pivot=pivot)
        ranked = scores.abs() if by_abs else scores
        assert torch.equal(mask, sort_scatter_topk(ranked, k))
        bands += width > 0
    assert bands > 20  # the band path ran (after the first two steps)


def test_host_topk_with_nan_scores_falls_back_to_radix():
    s = torch.randn(1000, generator=torch.Generator().manual_seed(4))
    s[[3, 500]] = torch.nan
    for k in (0.1, 0.5):
        assert torch.equal(topk_mask(s, k, "host", by_abs=True),
                           topk_mask(s, k, "radix", by_abs=True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_supermask_masks_by_size(dtype):
    for n in (HOST_DRAW_MIN - 1, HOST_DRAW_MIN):
        p = torch.rand(n, generator=torch.Generator().manual_seed(5), dtype=dtype)
        p[:3] = torch.tensor([0.0, 1.0, 0.5], dtype=dtype)
        assert torch.equal(expected_mask(p), p > 0.5)
        torch.manual_seed(6)
        fast = bernoulli_mask(p)
        after = torch.rand(3)
        assert fast.dtype == torch.bool and fast.shape == p.shape
        assert not fast[0] and fast[1]            # p = 0 never, p = 1 always
        torch.manual_seed(6)
        assert torch.equal(bernoulli_mask(p), fast)   # torch's seed reproduces the draw
        torch.manual_seed(6)
        if n < HOST_DRAW_MIN:   # a small layer: torch's own draw, one uniform per weight
            assert torch.equal(fast, torch.rand_like(p) < p)
        else:                   # the host draw: SEED_WORDS numbers of torch's stream
            torch.randint(0, 2**63 - 1, (SEED_WORDS,), dtype=torch.int64)
        assert torch.equal(torch.rand(3), after)
    strided = p.view(-1)[:10_000].view(100, 100).t()   # not numpy's: torch.bernoulli
    assert bernoulli_mask(strided).dtype == dtype


def test_supermask_kept_p_backward_equals_recomputed_backward():
    g = torch.Generator().manual_seed(7)
    shape = (6, 11)
    weight, mask = torch.randn(shape, generator=g), torch.rand(shape, generator=g) < 0.5
    upstream = torch.randn(shape, generator=g)
    grads = []
    for keep in (True, False):  # the CPU path keeps p from forward; CUDA recomputes it
        logits = torch.randn(shape, generator=torch.Generator().manual_seed(8)).requires_grad_()
        p = torch.sigmoid(logits.detach()) if keep else None
        w = SigmoidMaskedWeight.apply(weight, logits, mask, p)
        assert torch.equal(w, weight * mask)
        w.backward(upstream)
        grads.append(logits.grad)
    assert torch.equal(grads[0], grads[1])
