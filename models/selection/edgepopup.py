"""edge-popup (Ramanujan et al. 2020): keep the top-k fraction of |scores| per layer (or globally).

Exactly `n - int((1 - k) * n)` weights are kept (the reference's count). Ties are broken by flat
index, lower index kept, so the mask is a pure function of the scores.

Fast paths: find the threshold (the smallest kept value) without sorting indices, then compare.
* CPU ("host", the default there): numpy on the scores' own memory (kernels.py: torch's bool
  kernels are several times slower than numpy's on the CPU). A layer remembers its last
  threshold: the new one is almost always within a narrow band around it, so two comparisons
  and counts show how many values lie above the band, only the values inside the band are
  gathered, and a partial sort (`np.partition`) of those few gives the exact threshold. A band
  that misses (first step, a jump) falls back to `np.partition` of the whole layer. Then
  `key >= threshold` is the mask unless one count shows ties straddling the threshold; only then
  are the tied elements admitted in index order.
* CUDA: sort the values only and admit elements equal to the threshold in index order by a
  cumulative sum, which keeps the count exact with no device-to-host sync (an H100 sorts values
  ~13x faster than `torch.kthvalue`).
* "radix" (CPU, float32): a radix select on the float32 bit patterns (|x| is the pattern
  without its sign bit, and non-negative patterns order like the floats): two small histograms
  find the threshold in a few integer passes. Kept as a way; NaN scores (a diverged trial) fall
  back to it, since it ranks NaN above everything as `sort` does.

The layer's weight is `weight * mask` (bool mask, no float copy) and its backward sends
dL/dW_eff * W to the scores (times sign(S) where |S| is ranked: exactly what autograd through
`abs` gives) in one Function: no |S| tensor is kept or built for the graph. On the CPU that
backward is one fused pass (`fused.sign_mask_grad`, the same bits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hiddenlab.config import SCORE_INITS, param

from ..inits import init_scores, init_weights
from .layers import LayerSpec, SelectionLayer
from .method import BASE_RECIPE, IMAGENET_RECIPE, Method, SelectionOptions, is_imagenet
from . import fused
from .kernels import apply_mask, as_numpy, host_ok
from .packing import MASK_BITS

THRESHOLD_WAYS = ("auto", "host", "sort", "kthvalue", "partition", "radix")
_NUMPY_DTYPES = (torch.float32, torch.float64, torch.float16)
_SIGN_OFF = 0x7FFFFFFF
_BAND_MIN = 1 << 14  # smaller layers: one partition costs less than the band's extra calls


def kept_count(n: int, k: float) -> int:
    return n - int((1.0 - k) * n)


def _threshold(flat: torch.Tensor, pruned: int, threshold_by: str) -> torch.Tensor:
    """The (pruned + 1)-th smallest value of `flat`: the smallest value kept."""
    if threshold_by == "sort":
        return torch.sort(flat).values[pruned]
    if threshold_by == "partition":
        values = flat.detach().numpy()
        return torch.tensor(np.partition(values, pruned)[pruned], dtype=flat.dtype)
    return torch.kthvalue(flat, pruned + 1).values


def _radix_key_threshold(key: torch.Tensor, pruned: int) -> int:
    """The (pruned + 1)-th smallest of `key` (int32, all >= 0) by a two-level radix select:
    count the top 15 bits, then the low 16 bits inside the one bucket that holds it. A few
    integer passes; no sort, no copy of the whole tensor."""
    high = key >> 16
    csum = torch.bincount(high, minlength=1 << 15).cumsum_(0)
    bucket = int(torch.searchsorted(csum, pruned, right=True))
    rest = pruned - (int(csum[bucket - 1]) if bucket else 0)
    low = key[high == bucket] & 0xFFFF
    csum = torch.bincount(low, minlength=1 << 16).cumsum_(0)
    return (bucket << 16) | int(torch.searchsorted(csum, rest, right=True))


def _exact_count(above_or_tie: torch.Tensor, above, ties, kept: int, sync: bool):
    """`above_or_tie` is the mask unless ties straddle the threshold: then admit the tied
    elements in index order (a cumulative sum; no host sync where `sync` is False)."""
    if sync and int(torch.count_nonzero(above_or_tie)) == kept:
        return above_or_tie
    above, ties = above(), ties()
    room = kept - torch.count_nonzero(above)
    return above | (ties & (torch.cumsum(ties, 0) <= room))


def topk_mask(scores: torch.Tensor, k: float, threshold_by: str = "auto",
              by_abs: bool = False, pivot: dict | None = None) -> torch.Tensor:
    """Bool mask keeping exactly kept_count(n, k) largest entries of `scores` (of |scores| with
    `by_abs`); ties: lower flat index wins.
    `threshold_by`: "host" (numpy on the CPU: pivot band, else partition), "sort" (values only;
    fastest on CUDA), "radix" (CPU, float32 |scores| or non-negative scores), "partition"
    (numpy introselect), "kthvalue", or "auto": sort on CUDA, host on the CPU where numpy can
    hold the scores, else (bfloat16, torch.compile) kthvalue. `pivot`: a dict the caller keeps
    between calls (the last threshold and band width, for "host"). The result does not depend
    on the way."""
    flat = scores.reshape(-1)
    n = flat.numel()
    kept = kept_count(n, k)
    pruned = n - kept
    if pruned == 0:
        return torch.ones_like(scores, dtype=torch.bool)
    if kept == 0:  # k so small that (1 - k) * n rounds to n
        return torch.zeros_like(scores, dtype=torch.bool)
    on_host = flat.device.type == "cpu" and not torch.compiler.is_compiling()
    radix_ok = on_host and flat.dtype == torch.float32 and flat.is_contiguous()
    numpy_ok = on_host and flat.dtype in _NUMPY_DTYPES
    if threshold_by == "auto":
        threshold_by = "sort" if flat.is_cuda else "host" if numpy_ok else "kthvalue"
    if threshold_by == "host":
        if host_ok(flat):
            mask = _host_mask(flat, kept, by_abs, pivot if pivot is not None else {})
            if mask is not None:
                return mask.view_as(scores)
        threshold_by = "radix"  # NaN scores, or memory numpy cannot use as it is
    if threshold_by == "radix":
        if radix_ok and not by_abs:
            radix_ok = bool((flat.detach().view(torch.int32) >= 0).all())  # no negative (or -0.0) value
        if not radix_ok:
            threshold_by = "partition" if numpy_ok else "kthvalue"
    if threshold_by == "partition" and not numpy_ok:
        threshold_by = "kthvalue"  # the same threshold; numpy cannot hold this tensor
    if threshold_by == "radix":
        # |x| of a float32 is its bit pattern without the sign bit, and for non-negative floats
        # the integer order of the bit patterns is the float order (+0.0 and -0.0 both map to 0;
        # NaN above everything, as sort puts it): rank, threshold and compare the integers.
        key = flat.detach().view(torch.int32)
        key = key & _SIGN_OFF if by_abs else key
        t = _radix_key_threshold(key, pruned)
        mask = _exact_count(key >= t, lambda: key > t, lambda: key == t, kept, sync=True)
        return mask.view_as(scores)
    ranked = flat.abs() if by_abs else flat
    threshold = _threshold(ranked, pruned, threshold_by)
    # On the CPU a host sync costs nothing: one comparison is the mask unless ties straddle the
    # threshold (continuous scores: almost never), which one count reveals.
    mask = _exact_count(ranked >= threshold if on_host else None, lambda: ranked > threshold,
                        lambda: ranked == threshold, kept, sync=on_host)
    return mask.view_as(scores)


def _host_mask(flat: torch.Tensor, kept: int, by_abs: bool, pivot: dict) -> torch.Tensor | None:
    """The top-`kept` mask computed by numpy on the scores' memory; None where NaN scores make
    the count come out wrong (the caller falls back to radix, which ranks NaN above everything
    as `sort` does; a band that holds the answer ranks NaN below every number instead)."""
    x = as_numpy(flat)
    a = np.abs(x) if by_abs else x
    t = _band_threshold(a, kept, pivot)
    mask = np.greater_equal(a, t)
    if np.count_nonzero(mask) != kept:
        if np.isnan(t) or np.isnan(a).any():
            return None
        # ties straddle the threshold: everything above it, then the tied values in index order
        np.greater(a, t, out=mask)
        room = kept - np.count_nonzero(mask)
        mask[np.flatnonzero(a == t)[:room]] = True
    return torch.from_numpy(mask)


def _band_threshold(a: np.ndarray, kept: int, pivot: dict):
    """The kept-th largest value of `a`. With a previous threshold in `pivot`, count the values
    at or above the top and the bottom of a band around it: if the answer lies inside, it is the
    (kept - above_band)-th largest of the few values in the band. Otherwise (or with no pivot)
    a partial sort of everything. Either way the exact value; `pivot` is updated."""
    previous, width = pivot.get("threshold"), pivot.get("width", 0.0)
    t = None
    if previous is not None and width > 0 and a.size >= _BAND_MIN:
        lo, hi = a.dtype.type(previous - width), a.dtype.type(previous + width)
        at_or_above_hi = np.greater_equal(a, hi)
        above = np.count_nonzero(at_or_above_hi)
        if above < kept:  # the threshold is below hi
            at_or_above_lo = np.greater_equal(a, lo)
            if np.count_nonzero(at_or_above_lo) >= kept:  # ... and at or above lo
                band = a[np.greater(at_or_above_lo, at_or_above_hi)]  # lo <= a < hi
                i = band.size - (kept - above)
                t = np.partition(band, i)[i]
    if t is None:
        i = a.size - kept
        t = np.partition(a, i)[i]
    if previous is not None and np.isfinite(t):
        # next band: a few times this step's move, never narrower than a few ulps of t
        pivot["width"] = max(4.0 * abs(float(t) - previous), 64 * float(np.spacing(np.abs(t))))
    pivot["threshold"] = float(t)
    return t


class TopKWeight(torch.autograd.Function):
    """weight * mask forward; backward (straight-through) dL/dS = dL/dW_eff * W, times sign(S)
    when |S| was ranked: the same operations, in the same order, as autograd through
    `MaskedWeight(weight, scores.abs(), mask)` performs, without a second |S| in the graph."""

    @staticmethod
    def forward(ctx, weight, scores, mask, use_abs: bool):
        ctx.use_abs = use_abs
        ctx.save_for_backward(weight, scores if use_abs else None)
        return apply_mask(weight, mask)

    @staticmethod
    def backward(ctx, grad):
        weight, scores = ctx.saved_tensors
        if ctx.use_abs and fused.available() and host_ok(grad, weight, scores) and \
                grad.dtype == weight.dtype == scores.dtype == torch.float32:
            out = fused.sign_mask_grad(as_numpy(grad), as_numpy(weight), as_numpy(scores))
            return None, torch.from_numpy(out).view(grad.shape), None, None
        grad_scores = grad * weight
        if ctx.use_abs:
            grad_scores.mul_(scores.sgn())
        return None, grad_scores, None, None


class EdgePopupLayer(SelectionLayer):
    method = "edgepopup"

    def __init__(self, spec: LayerSpec, weight: torch.Tensor, scores: torch.Tensor, k: float,
                 use_abs: bool = True):
        super().__init__(spec)
        self.register_buffer("weight", weight)
        self.scores = nn.Parameter(scores)
        self.k = k
        self.use_abs = use_abs
        # Set by a global top-k hook (GlobalTopK) for the current step; None: per-layer top-k.
        self.forced_mask: torch.Tensor | None = None
        self._pivot: dict = {}  # the last threshold, where the next one is looked for first

    def ranked(self) -> torch.Tensor:
        return self.scores.abs() if self.use_abs else self.scores

    def mask(self) -> torch.Tensor:
        if self.forced_mask is not None:
            return self.forced_mask
        with torch.no_grad():
            return topk_mask(self.scores, self.k, by_abs=self.use_abs, pivot=self._pivot)

    def compute_weight(self) -> torch.Tensor:
        return TopKWeight.apply(self.weight, self.scores, self.mask(), self.use_abs)

    def cache_key(self):
        return self.scores._version if self.forced_mask is None else None

    @torch.no_grad()
    def selection(self):
        return self.mask().clone()

    kept = selection


class GlobalTopK:
    """One top-k over every edge-popup layer of a model, recomputed once per forward pass of the
    model (a forward pre-hook) and handed to each layer as its mask."""

    def __init__(self, model: nn.Module, k: float):
        self.layers = [m for m in model.modules() if isinstance(m, EdgePopupLayer)]
        self.k = k
        self._key = None
        model.register_forward_pre_hook(self)

    @torch.no_grad()
    def __call__(self, model, inputs):
        key = tuple(l.scores._version for l in self.layers)
        if not model.training and key == self._key:
            return  # evaluation: masks already match these scores
        by_abs = all(l.use_abs for l in self.layers)
        flat = torch.cat([(l.scores if by_abs else l.ranked()).reshape(-1) for l in self.layers])
        mask = topk_mask(flat, self.k, by_abs=by_abs)
        start = 0
        for l in self.layers:
            n = l.scores.numel()
            l.forced_mask = mask[start:start + n].view_as(l.scores)
            start += n
        self._key = key if not model.training else None


# --- the method -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options(SelectionOptions):
    k: float = param(0.5, "fraction of weights KEPT per layer (or globally), in (0, 1]", gt=0,
                     le=1)
    score_init: str = param("kaiming_uniform", "score distribution (reference: kaiming "
                            "uniform, a=sqrt(5))", choices=SCORE_INITS)
    score_abs: bool = param(True, "rank |score| (the reference) instead of score")
    topk_scope: str = param("layer", "top-k per layer (the paper) or one global top-k",
                            choices=("layer", "global"))


class EdgePopup(Method):
    name = "edgepopup"
    paper = "Ramanujan et al., What's Hidden in a Randomly Weighted Neural Network?, CVPR 2020"
    summary = "keep the top-k fraction of |scores| per layer; straight-through gradients"
    Options = Options
    packing = MASK_BITS  # exported: one bit per connection

    def recipe(self, cfg, given):
        # docs/recipes.md: CIFAR-10 (paper 4.1, reference configs/smallscale) and ImageNet
        # (reference configs/largescale).
        if is_imagenet(cfg.model):
            return {**BASE_RECIPE, **IMAGENET_RECIPE}
        out = dict(BASE_RECIPE)
        if cfg.model == "cifar-resnet18":
            out.update(weight_decay=5e-4, batch_size=256)
        return out

    def recipe_note(self) -> str:
        return ("SGD 0.1, momentum 0.9, wd 1e-4, cosine, batch 128, 100 epochs (CIFAR ResNet-18:"
                " wd 5e-4, batch 256); ImageNet models: lr 0.256, momentum 0.875, wd 1/32768, "
                "5 warm-up epochs, label smoothing 0.1, batch 256")

    def layer(self, spec: LayerSpec, cfg) -> EdgePopupLayer:
        o = cfg.options
        weight = init_weights(cfg.init, spec.shape, spec.shape, o.k)
        scores = init_scores(o.score_init, spec.shape, spec.shape)
        return EdgePopupLayer(spec, weight, scores, o.k, o.score_abs)

    def attach(self, model: nn.Module, cfg) -> None:
        if cfg.options.topk_scope == "global":
            model._global_topk = GlobalTopK(model, cfg.options.k)  # a reference for inspection


METHOD = EdgePopup()
