"""Zhou et al. (2019) supermask: mask ~ Bernoulli(sigmoid(logit)), straight-through.

The gradient reaches p = sigmoid(logit) as if the sampled mask were p, then the sigmoid. At
evaluation the mask is either sampled (the references' behaviour, noisy) or the expected mask
p > 0.5 (deterministic, cached): `eval_mode` says which, and every result records it.
Optional dynamic scaling (TF reference): weights x n / kept, so the layer's output scale does not
shrink with sparsity.

Fast path (CPU): the mask is drawn as `rand_like(p) < p`, which for float32/float64 p on CPU
consumes the generator exactly as `torch.bernoulli(p)` does and returns the same draw
(tests/test_fastpaths.py) at about a third of the cost, as a bool mask (no float copy); the
comparison and `weight * mask` run in numpy (kernels.py: torch's bool kernels are slow on the
CPU), and the backward reuses p = sigmoid(logit) from the forward (one weight-sized tensor kept
per layer, one sigmoid pass saved per step). The uniforms themselves (torch's mt19937, one
32-bit draw each) are most of what is left: handing torch's generator state to numpy's MT19937
produces the identical stream, but no faster. CUDA keeps `torch.bernoulli`, already one fused
kernel there, and recomputes sigmoid(logit) in backward rather than keeping it (memory).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import LayerSpec, SelectionLayer
from .kernels import apply_mask, host_ok


def bernoulli_mask(p: torch.Tensor) -> torch.Tensor:
    """A Bernoulli(p) draw, elementwise. Bool for float32/float64 p on CPU (`rand < p`: the very
    draw `torch.bernoulli` makes from the same generator state, leaving it in the same state),
    `torch.bernoulli`'s float 0/1 elsewhere (CUDA, half precisions: their draws differ)."""
    if p.device.type == "cpu" and p.dtype in (torch.float32, torch.float64):
        u = torch.rand_like(p)
        if host_ok(p, u):
            return torch.from_numpy(np.less(u.numpy(), p.detach().numpy()))
        return u < p
    return torch.bernoulli(p)


def expected_mask(p: torch.Tensor) -> torch.Tensor:
    """p > 0.5 (numpy's comparison where it can)."""
    if host_ok(p):
        return torch.from_numpy(np.greater(p.detach().numpy(), p.new_tensor(0.5).numpy()))
    return p > 0.5


class SigmoidMaskedWeight(torch.autograd.Function):
    """weight * mask forward; backward dL/dlogit = sigmoid'(logit) * dL/dW_eff * W, computed as
    autograd computes `MaskedWeight(weight, sigmoid(logits), mask)` (the same kernels in the same
    order, so bit for bit). `p`: sigmoid(logits) from the forward, kept for the backward (CPU);
    None: recomputed there instead (activation memory as edge-popup's: the effective weight
    only)."""

    @staticmethod
    def forward(ctx, weight, logits, mask, p=None):
        ctx.save_for_backward(weight, logits if p is None else p)
        ctx.recompute = p is None
        return apply_mask(weight, mask)

    @staticmethod
    def backward(ctx, grad):
        weight, saved = ctx.saved_tensors
        p = torch.sigmoid(saved) if ctx.recompute else saved
        return None, torch.ops.aten.sigmoid_backward(grad * weight, p), None, None


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
            mask = bernoulli_mask(p) if self._sampling() else expected_mask(p)
        keep_p = p if p.device.type == "cpu" else None
        w = SigmoidMaskedWeight.apply(self.weight, self.scores, mask, keep_p)
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
