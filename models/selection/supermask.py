"""Zhou et al. (2019) supermask: mask ~ Bernoulli(sigmoid(logit)), straight-through.

The gradient reaches p = sigmoid(logit) as if the sampled mask were p, then the sigmoid. At
evaluation the mask is either sampled (the references' behaviour, noisy) or the expected mask
p > 0.5 (deterministic, cached): `eval_mode` says which, and every result records it.
Optional dynamic scaling (TF reference): weights x n / kept, so the layer's output scale does not
shrink with sparsity.

Fast path (CPU): the mask is drawn by `host_bernoulli` from a numpy SFC64 generator whose state
is three numbers of torch's stream (`kernels.host_generator`), as a bool mask: one random byte b
per weight settles u < p for all but the 1/256 of weights whose byte is floor(256 p), and those
get a second uniform (u = (b + v) / 256, uniform to 2^-32). That is exactly Bernoulli(p) (finer
than a float32 uniform's 2^-24), at about a third of the cost of torch's mt19937 uniforms, which
were most of a supermask step on a small network. Layers of fewer than `HOST_DRAW_MIN` weights
keep `rand_like(p) < p` (torch's draw): there the host generator's set-up costs more than it
saves. The stream changed with it: for a given seed the masks differ from those of earlier
revisions (which drew `rand_like(p) < p` everywhere, i.e. `torch.bernoulli`'s draw); the
distribution is tested (tests/test_fastpaths.py), and a draw advances torch's generator by
exactly three numbers, so seeding, resuming and packed trials reproduce it as before. The
comparison and `weight * mask` run in numpy (kernels.py: torch's bool kernels are slow on the
CPU), and the backward reuses p = sigmoid(logit) from the forward (one weight-sized tensor kept
per layer, one sigmoid pass saved per step). With numba (fused.py), a training forward draws the
mask and forms weight * mask in one pass and the backward is one pass too
(`SampledMaskedWeight`): the same bits as the numpy path, which runs without numba. CUDA keeps
`torch.bernoulli`, already one fused kernel there, and recomputes sigmoid(logit) in backward
rather than keeping it (memory).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hiddenlab.config import SCORE_INITS, param

from ..inits import init_scores, init_weights
from .layers import LayerSpec, SelectionLayer
from .method import BASE_RECIPE, Hook, Method, SelectionOptions, is_imagenet
from . import fused
from .kernels import (HOST_DRAW_MIN, apply_mask, as_numpy, host_generator, host_ok, host_seed,
                      random_bytes)
from .packing import MASK_BITS


def bernoulli_mask(p: torch.Tensor) -> torch.Tensor:
    """A Bernoulli(p) draw, elementwise, for contiguous float32/float64 p on the CPU a bool mask:
    `host_bernoulli` from `HOST_DRAW_MIN` weights on (three numbers of torch's stream), below
    that `torch.rand_like(p) < p` (torch's own draw: the host generator's set-up would cost
    more than it saves). `torch.bernoulli`'s float 0/1 elsewhere (CUDA, half precisions,
    strided p)."""
    if not host_ok(p):
        return torch.bernoulli(p)
    if p.numel() >= HOST_DRAW_MIN:
        mask = host_bernoulli(p.detach().reshape(-1).numpy(), host_generator())
        return torch.from_numpy(mask).view(p.shape)
    return torch.from_numpy(np.less(torch.rand_like(p).numpy(), p.detach().numpy()))


def host_bernoulli(p: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    """mask[i] = u[i] < p[i] for u[i] = (b[i] + v[i]) / 256 uniform on [0, 1): b a random byte,
    v a uniform of p's precision drawn only where b = floor(256 p) leaves it open. False for NaN
    p, True for p = 1, False for p = 0."""
    t = np.multiply(p, p.dtype.type(256))
    with np.errstate(invalid="ignore"):  # NaN p: casts to 0, then v < NaN is False
        whole = np.clip(t, 0, 255).astype(np.uint8)  # floor(t), 255 for p = 1
    b = random_bytes(gen, p.size)
    mask = np.less(b, whole)
    open_ = np.flatnonzero(b == whole)
    if open_.size:
        rest = t[open_] - whole[open_]   # exact: t and its floor are close
        mask[open_] = gen.random(open_.size, dtype=p.dtype) < rest
    return mask


def expected_mask(p: torch.Tensor) -> torch.Tensor:
    """p > 0.5 (numpy's comparison where it can)."""
    if host_ok(p):
        return torch.from_numpy(np.greater(p.detach().numpy(), p.new_tensor(0.5).numpy()))
    return p > 0.5


def mask_grad(grad: torch.Tensor, weight: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """dL/dlogit = sigmoid_backward(dL/dW_eff * W, p): fused in one pass on the CPU (float32,
    `fused.sigmoid_mask_grad`, the same bits), torch's two kernels elsewhere."""
    if fused.available() and host_ok(grad, weight, p) and \
            grad.dtype == weight.dtype == p.dtype == torch.float32:
        out = fused.sigmoid_mask_grad(as_numpy(grad), as_numpy(weight), as_numpy(p))
        return torch.from_numpy(out).view(grad.shape)
    return torch.ops.aten.sigmoid_backward(grad * weight, p)


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
        return None, mask_grad(grad, weight, p), None, None


class SampledMaskedWeight(torch.autograd.Function):
    """The CPU training path in two fused passes (float32, `fused.available()`): forward draws
    the mask and forms weight * mask at once (`fused.bernoulli_product`: exactly
    `host_bernoulli` then `apply_mask`), backward is `mask_grad`. Returns (weight * mask,
    mask)."""

    @staticmethod
    def forward(ctx, weight, logits, p):
        ctx.save_for_backward(weight, p)
        out, mask = fused.bernoulli_product(as_numpy(p), as_numpy(weight), host_seed())
        ctx.mark_non_differentiable(mask := torch.from_numpy(mask).view(p.shape))
        return torch.from_numpy(out).view(weight.shape), mask

    @staticmethod
    def backward(ctx, grad, _):
        weight, p = ctx.saved_tensors
        return None, mask_grad(grad, weight, p), None


def fused_draw(weight: torch.Tensor, p: torch.Tensor) -> bool:
    """Whether a training draw takes `SampledMaskedWeight`: the host draw's size, float32 on
    the CPU, numba present."""
    return p.numel() >= HOST_DRAW_MIN and fused.available() and host_ok(weight, p) and \
        weight.dtype == p.dtype == torch.float32


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
        if self._sampling() and fused_draw(self.weight, p):
            w, mask = SampledMaskedWeight.apply(self.weight, self.scores, p)
        else:
            with torch.no_grad():
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


# --- the method -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options(SelectionOptions):
    score_init: str = param("kaiming_uniform", "mask-logit distribution (edge-popup's rerun: "
                            "like edge-popup scores; Zhou's TF code: constant)",
                            choices=SCORE_INITS)
    score_const: float = param(0.0, "the logit of score_init=constant (lower: sparser)",
                               ge=-100, le=100)
    eval_mode: str = param("expected", "evaluation mask: expected (p > 0.5, deterministic) or "
                           "sample (the references: noisy)", choices=("expected", "sample"))
    supermask_scale: bool = param(False, "Zhou's dynamic scaling: weights x n / kept")


# Learning rates of Zhou et al. as tuned by edge-popup (docs/recipes.md); 200 elsewhere.
ZHOU_LR = {"conv8": 800.0, "cifar-resnet18": 400.0}


class Supermask(Method):
    name = "supermask"
    paper = "Zhou et al., Deconstructing Lottery Tickets: Zeros, Signs, and the Supermask, " \
            "NeurIPS 2019"
    summary = "mask ~ Bernoulli(sigmoid(score)), straight-through"
    Options = Options
    samples_in_training = True
    packing = MASK_BITS  # exported: one bit per connection (the expected mask)

    def recipe(self, cfg, given):
        # No weight decay: at lr 200 any decay drags every logit towards p = 0.5 each step.
        out = dict(BASE_RECIPE, init="xavier_normal", weight_decay=0.0,
                   lr=ZHOU_LR.get(cfg.model, 200.0))
        if is_imagenet(cfg.model):  # reference configs/largescale; no warm-up, no smoothing
            out.update(lr=400.0, batch_size=256)
        return out

    def recipe_note(self) -> str:
        return ("SGD lr 200 (Conv8 800, CIFAR ResNet-18 and ImageNet 400), momentum 0.9, no "
                "weight decay, cosine, batch 128, 100 epochs; Glorot-normal weights (Zhou's code)")

    def kept_fraction(self, opts) -> float:
        return 1.0

    def layer(self, spec: LayerSpec, cfg) -> SupermaskLayer:
        o = cfg.options
        weight = init_weights(cfg.init, spec.shape, spec.shape, 1.0)
        logits = init_scores(o.score_init, spec.shape, spec.shape, o.score_const)
        return SupermaskLayer(spec, weight, logits, o.eval_mode, o.supermask_scale)

    def hooks(self, model: nn.Module, cfg) -> list[Hook]:
        return [PaperSparsity(model, cfg.seed)]


class PaperSparsity(Hook):
    """Zhou's own sparsity axis, beside hiddenlab's connection-weighted `kept_fraction` (the
    evaluation network's p > 0.5 mask): the unweighted mean over layers of the fraction kept by a
    sampled mask. Drawn from its own generator, so training's random stream is untouched."""

    def __init__(self, model: nn.Module, seed: int):
        self.layers = [m for m in model.modules() if isinstance(m, SupermaskLayer)]
        self.seed = seed

    @torch.no_grad()
    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        if not self.layers:
            return {}
        g = torch.Generator().manual_seed(self.seed * 7_919 + epoch)
        fractions = [float((torch.rand(l.scores.shape, generator=g) <
                            torch.sigmoid(l.scores.detach().float().cpu())).float().mean())
                     for l in self.layers]
        return {"kept_fraction_paper": sum(fractions) / len(fractions)}


METHOD = Supermask()
