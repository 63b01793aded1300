"""The reference code's formulations, re-implemented for side-by-side "old vs new" numbers.

Written from the facts in docs/methods.md, docs/reference-defects.md and docs/performance.md, not copied: each
layer does what the public reference implementation of its paper does, with its cost profile.

* edge-popup (allenai/hidden-networks): `GetSubnet`, an autograd Function that clones the scores,
  fully sorts them (values *and* indices), and scatters 0 into the lowest `int((1 - k) * n)`
  positions and 1 into the rest; backward passes the gradient straight through. The layer ranks
  |scores| (autograd goes through `abs`) and multiplies the frozen weight by the float mask.
* Zhou supermask (edge-popup's re-implementation of it): p = sigmoid(scores), a Bernoulli sample
  through an identity-backward Function, weight * mask.
* Slot Machines (maxwell-aladago/slot-machines): K-last values and scores; the selection builds a
  one-hot K-tensor (argmax for GS, a multinomial draw from softmax for PS) with an identity
  backward, and the effective weight is `(values * one_hot).sum(-1)`: K times the work and K
  times the saved activation memory of an index gather.

`reference_model(model)` turns a hiddenlab model into the same network built from these layers,
sharing the frozen weights (they never change) and copying the scores, so benchmarks run both on
identical tensors. `sort_scatter_topk` is the straightforward top-k formulation (stable sort,
index scatter) the tests compare the fast paths with, ties included.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GetSubnet", "RefEdgePopup", "RefSupermask", "RefSlot", "sort_scatter_topk",
           "one_hot_select", "reference_model", "REFERENCE_OF"]


# --- straightforward formulations (what the fast paths must equal) ------------------------------
def sort_scatter_topk(scores: torch.Tensor, k: float) -> torch.Tensor:
    """Bool mask of the `n - int((1 - k) * n)` largest entries by a stable descending sort and an
    index scatter; ties: the lower flat index is kept (hiddenlab's documented rule)."""
    flat = scores.reshape(-1)
    n = flat.numel()
    order = torch.sort(flat, descending=True, stable=True).indices
    mask = torch.zeros(n, dtype=torch.bool, device=flat.device)
    mask[order[: n - int((1 - k) * n)]] = True
    return mask.view_as(scores)


def one_hot_select(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Slot selection as the reference writes it: a one-hot K-tensor times the values, summed."""
    K = values.shape[-1]
    one_hot = torch.eye(K, dtype=values.dtype, device=values.device)[index]
    return (values * one_hot).sum(-1)


# --- edge-popup ----------------------------------------------------------------------------------
class GetSubnet(torch.autograd.Function):
    """The reference's mask: clone, full sort, two index assignments; straight-through backward.
    Its sort is not stable, so ties fall wherever the sort puts them (the reference's behaviour)."""

    @staticmethod
    def forward(ctx, scores, k):
        out = scores.clone()
        _, idx = scores.flatten().sort()
        j = int((1 - k) * scores.numel())
        flat_out = out.flatten()  # a view of `out`
        flat_out[idx[:j]] = 0
        flat_out[idx[j:]] = 1
        return out

    @staticmethod
    def backward(ctx, g):
        return g, None


class _RefLayer(nn.Module):
    """Shared by the reference layers: frozen `weight` (a buffer), trainable `scores`, geometry."""

    def __init__(self, weight: torch.Tensor, scores: torch.Tensor, stride: int = 1,
                 padding: int = 0):
        super().__init__()
        self.register_buffer("weight", weight)
        self.scores = nn.Parameter(scores)
        self.stride, self.padding = stride, padding

    def _op(self, x, w):
        if w.dim() == 4:
            return F.conv2d(x, w, None, self.stride, self.padding)
        return F.linear(x, w)


class RefEdgePopup(_RefLayer):
    def __init__(self, weight, scores, k: float, stride=1, padding=0, use_abs: bool = True):
        super().__init__(weight, scores, stride, padding)
        self.k, self.use_abs = k, use_abs

    def effective_weight(self):
        ranked = self.scores.abs() if self.use_abs else self.scores
        return self.weight * GetSubnet.apply(ranked, self.k)

    def forward(self, x):
        return self._op(x, self.effective_weight())


# --- Zhou supermask ------------------------------------------------------------------------------
class StraightThroughBernoulli(torch.autograd.Function):
    @staticmethod
    def forward(ctx, p):
        return torch.bernoulli(p)

    @staticmethod
    def backward(ctx, g):
        return g


class RefSupermask(_RefLayer):
    """Samples in training (and, like the reference, also at evaluation)."""

    def effective_weight(self):
        return self.weight * StraightThroughBernoulli.apply(torch.sigmoid(self.scores))

    def forward(self, x):
        return self._op(x, self.effective_weight())


# --- Slot Machines -------------------------------------------------------------------------------
class GreedyOneHot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores):
        idx = scores.argmax(-1)
        return torch.eye(scores.shape[-1], dtype=scores.dtype, device=scores.device)[idx]

    @staticmethod
    def backward(ctx, g):
        return g


class SampledOneHot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores):
        K = scores.shape[-1]
        probs = torch.softmax(scores.reshape(-1, K), -1)
        idx = torch.multinomial(probs, 1).view(scores.shape[:-1])
        return torch.eye(K, dtype=scores.dtype, device=scores.device)[idx]

    @staticmethod
    def backward(ctx, g):
        return g


class GivenOneHot(torch.autograd.Function):
    """One-hot of a given index, straight-through: lets tests feed both formulations one draw."""

    @staticmethod
    def forward(ctx, scores, index):
        return torch.eye(scores.shape[-1], dtype=scores.dtype, device=scores.device)[index]

    @staticmethod
    def backward(ctx, g):
        return g, None


class RefSlot(_RefLayer):
    """`weight`: (*shape, K) values; `scores`: (*shape, K). mode: "argmax" (GS) or "sample" (PS)."""

    def __init__(self, weight, scores, mode: str = "argmax", stride=1, padding=0):
        super().__init__(weight, scores, stride, padding)
        self.mode = mode

    def effective_weight(self, index: torch.Tensor | None = None):
        if index is not None:
            one_hot = GivenOneHot.apply(self.scores, index)
        elif self.mode == "sample":
            one_hot = SampledOneHot.apply(self.scores)
        else:
            one_hot = GreedyOneHot.apply(self.scores)
        return (self.weight * one_hot).sum(-1)

    def forward(self, x, index: torch.Tensor | None = None):
        return self._op(x, self.effective_weight(index))


# --- whole models --------------------------------------------------------------------------------
REFERENCE_OF = {"ref-edgepopup": "edgepopup", "ref-supermask": "supermask",
                "ref-slot-gs": "slot-gs", "ref-slot-ps": "slot-ps"}


def reference_layer(layer) -> nn.Module:
    """The reference layer equivalent to a hiddenlab selection layer: the same frozen tensor
    (shared), a copy of the scores, the same geometry and k."""
    from hiddenlab.models.selection.edgepopup import EdgePopupLayer
    from hiddenlab.models.selection.slot import SlotLayer
    from hiddenlab.models.selection.supermask import SupermaskLayer

    spec = layer.spec
    scores = layer.scores.detach().clone()
    if isinstance(layer, EdgePopupLayer):
        return RefEdgePopup(layer.weight, scores, layer.k, spec.stride, spec.padding,
                            layer.use_abs)
    if isinstance(layer, SupermaskLayer):
        return RefSupermask(layer.weight, scores, spec.stride, spec.padding)
    if isinstance(layer, SlotLayer):
        return RefSlot(layer.weight, scores, layer.train_mode, spec.stride, spec.padding)
    raise TypeError(f"no reference formulation of {type(layer).__name__}")


def reference_model(model: nn.Module) -> nn.Module:
    """A copy of `model` whose selection layers are the reference formulations. Frozen weights
    are shared with `model`, not copied; everything else (scores, BatchNorm) is copied."""
    from hiddenlab.models.selection import SelectionLayer

    memo = {}
    for m in model.modules():
        if isinstance(m, SelectionLayer) and not m.weight.requires_grad:
            memo[id(m.weight)] = m.weight  # shared with the reference model
            if isinstance(getattr(m, "scores", None), torch.Tensor):
                memo[id(m.scores)] = m.scores  # not deep-copied twice: reference_layer copies it
    ref = copy.deepcopy(model, memo)
    for attr in ("_global_topk",):
        if hasattr(ref, attr):
            raise ValueError("global top-k has no reference formulation")
    for parent in list(ref.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SelectionLayer) and child.method != "dense":
                setattr(parent, name, reference_layer(child))
    return ref
