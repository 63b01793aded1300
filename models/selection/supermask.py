"""Zhou et al. (2019) supermask: mask ~ Bernoulli(sigmoid(logit)), straight-through.

The gradient reaches p = sigmoid(logit) as if the sampled mask were p, then the sigmoid. At
evaluation the mask is either sampled (the references' behaviour, noisy) or the expected mask
p > 0.5 (deterministic, cached): `eval_mode` says which, and every result records it.
Optional dynamic scaling (TF reference): weights x n / kept, so the layer's output scale does not
shrink with sparsity.

Fast path (CPU): the mask is drawn as `rand_like(p) < p`, which for float32/float64 p on CPU
consumes the generator exactly as `torch.bernoulli(p)` does and returns the same draw
(tests/test_fastpaths.py) at about a third of the cost, as a bool mask (no float copy). CUDA
keeps `torch.bernoulli`, already one fused kernel there. The backward recomputes sigmoid(logit)
rather than keeping it from forward (one cheap pass for a weight-sized activation).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import LayerSpec, SelectionLayer


def bernoulli_mask(p: torch.Tensor) -> torch.Tensor:
    """A Bernoulli(p) draw, elementwise. Bool for float32/float64 p on CPU (`rand < p`: the very
    draw `torch.bernoulli` makes from the same generator state, leaving it in the same state),
    `torch.bernoulli`'s float 0/1 elsewhere (CUDA, half precisions: their draws differ)."""
    if p.device.type == "cpu" and p.dtype in (torch.float32, torch.float64):
        return torch.rand_like(p) < p
    return torch.bernoulli(p)


class SigmoidMaskedWeight(torch.autograd.Function):
    """weight * mask forward; backward dL/dlogit = sigmoid'(logit) * dL/dW_eff * W, computed as
    autograd computes `MaskedWeight(weight, sigmoid(logits), mask)` (the same kernels in the same
    order, so bit for bit), but p = sigmoid(logit) is recomputed in backward instead of being
    kept from forward: activation memory as edge-popup's (the effective weight only)."""

    @staticmethod
    def forward(ctx, weight, logits, mask):
        ctx.save_for_backward(weight, logits)
        return weight * mask

    @staticmethod
    def backward(ctx, grad):
        weight, logits = ctx.saved_tensors
        p = torch.sigmoid(logits)
        return None, torch.ops.aten.sigmoid_backward(grad * weight, p), None


class SupermaskLayer(SelectionLayer):
    method = "supermask"

    def __init__(self, spec: LayerSpec, weight: torch.Tensor, logits: torch.Tensor,
                 eval_mode: str = "expected", scale: bool = False):
        super().__init__(spec)
        self.register_buffer("weight", weight)
        self.scores = nn.Parameter(logits)
        self.eval_mode = eval_mode
        self.scale = scale

    def _sampling(self) -> bool:
        return self.training or self.eval_mode == "sample"

    def compute_weight(self) -> torch.Tensor:
        with torch.no_grad():
            p = torch.sigmoid(self.scores)
            mask = bernoulli_mask(p) if self._sampling() else (p > 0.5)
        w = SigmoidMaskedWeight.apply(self.weight, self.scores, mask)
        if self.scale:
            with torch.no_grad():
                factor = mask.numel() / mask.sum().to(torch.float32).clamp_min(1.0)
            w = w * factor
        return w

    def cache_key(self):
        return None if self._sampling() else self.scores._version

    @torch.no_grad()
    def selection(self):
        return torch.sigmoid(self.scores) > 0.5  # the expected mask, exactly as evaluation has it

    kept = selection

    @torch.no_grad()
    def kept_count(self) -> float:
        if self.eval_mode == "sample":
            return float(torch.sigmoid(self.scores).sum())
        return float(self.selection().sum())


def build(spec: LayerSpec, cfg) -> SupermaskLayer:
    from hiddenlab.models.inits import init_scores, init_weights

    from .edgepopup import _score_init

    weight = init_weights(cfg.resolved_init, spec.shape, spec.shape, cfg.keep)
    # edge-popup's re-implementation of Zhou initialises logits like edge-popup scores
    logits = init_scores(_score_init(cfg, "kaiming_uniform"), spec.shape, spec.shape,
                         cfg.score_const)
    return SupermaskLayer(spec, weight, logits, cfg.resolved_eval_mode, cfg.supermask_scale)
