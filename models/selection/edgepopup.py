"""edge-popup (Ramanujan et al. 2020): keep the top-k fraction of |scores| per layer (or globally).

Exactly `n - int((1 - k) * n)` weights are kept (the reference's count). Ties are broken by flat
index, lower index kept, so the mask is a pure function of the scores.

Fast path: sort the values only (no index scatter) and threshold at the smallest kept value;
elements equal to the threshold are admitted in index order by a cumulative sum, which keeps the
count exact with no device-to-host sync. On an H100 sorting values beats `torch.kthvalue` ~13x;
on CPU `kthvalue` (a selection, not a sort) is the faster way to get the same threshold.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import LayerSpec, MaskedWeight, SelectionLayer


def kept_count(n: int, k: float) -> int:
    return n - int((1.0 - k) * n)


def topk_mask(scores: torch.Tensor, k: float, threshold_by: str = "auto") -> torch.Tensor:
    """Bool mask keeping exactly kept_count(n, k) largest entries; ties: lower flat index wins.
    `threshold_by`: "sort" (fastest on CUDA), "kthvalue" (fastest on CPU) or "auto"."""
    flat = scores.reshape(-1)
    n = flat.numel()
    pruned = n - kept_count(n, k)
    if pruned == 0:
        return torch.ones_like(scores, dtype=torch.bool)
    if threshold_by == "auto":
        threshold_by = "sort" if flat.is_cuda else "kthvalue"
    if threshold_by == "sort":
        threshold = torch.sort(flat).values[pruned]
    else:
        threshold = torch.kthvalue(flat, pruned + 1).values
    above = flat > threshold
    ties = flat == threshold
    room = (n - pruned) - above.sum()
    mask = above | (ties & (torch.cumsum(ties, 0) <= room))
    return mask.view_as(scores)


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

    def ranked(self) -> torch.Tensor:
        return self.scores.abs() if self.use_abs else self.scores

    def mask(self) -> torch.Tensor:
        if self.forced_mask is not None:
            return self.forced_mask
        with torch.no_grad():
            return topk_mask(self.ranked(), self.k)

    def compute_weight(self) -> torch.Tensor:
        mask = self.mask().to(self.weight.dtype)
        return MaskedWeight.apply(self.weight, self.ranked(), mask)

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
        flat = torch.cat([l.ranked().reshape(-1) for l in self.layers])
        mask = topk_mask(flat, self.k)
        start = 0
        for l in self.layers:
            n = l.scores.numel()
            l.forced_mask = mask[start:start + n].view_as(l.scores)
            start += n
        self._key = key if not model.training else None


def build(spec: LayerSpec, cfg) -> EdgePopupLayer:
    from hiddenlab.models.inits import init_scores, init_weights

    weight = init_weights(cfg.resolved_init, spec.shape, spec.shape, cfg.keep)
    scores = init_scores(_score_init(cfg, "kaiming_uniform"), spec.shape, spec.shape,
                         cfg.score_const)
    return EdgePopupLayer(spec, weight, scores, cfg.keep, cfg.score_abs)


def attach(model: nn.Module, cfg) -> None:
    if cfg.topk_scope == "global":
        model._global_topk = GlobalTopK(model, cfg.keep)  # keep a reference for inspection


def _score_init(cfg, default: str) -> str:
    return default if cfg.score_init == "auto" else cfg.score_init
