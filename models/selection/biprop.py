"""biprop, multi-prize tickets MPT-1/32 (Diffenderfer & Kailkhura, ICLR 2021): edge-popup's
per-layer top-k of |scores|, with the kept weights binarised.

Per layer, m = top-k(|S|) (edge-popup's `topk_mask`: exactly n - int((1 - k) n) kept) and

    W_eff = alpha * sign(W) * m,   alpha = sum(|W| * m) / (number kept),

one alpha per layer, recomputed from the current mask at every forward pass. The reference
divides by int(k n), which is the kept count only when k n is an integer; hiddenlab divides by
the count actually kept (docs/reference-defects.md#biprop).

Backward: the current reference (`GetQuantnet_binary.backward`, corrected in commit ce6a364)
returns g * |W| for g = dL/d(alpha m) = dL/dW_eff * sign(W); through the `abs` of the scores
that is dL/dS = dL/dW_eff * W * sign(S): it multiplies by W, not by alpha * sign(W), and no
gradient flows through alpha. That is edge-popup's straight-through gradient, so the layer reuses
`TopKWeight`'s backward and changes only its forward. With signed-constant weights (|W| = c
everywhere) alpha = c and biprop computes exactly what edge-popup computes.
docs/methods.md#biprop has the sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hiddenlab.config import SCORE_INITS, param

from ..inits import init_scores, init_weights
from .edgepopup import METHOD as EDGEPOPUP
from .edgepopup import EdgePopupLayer, TopKWeight
from .layers import LayerSpec
from .method import Method, SelectionOptions, is_imagenet
from .packing import MASK_BITS


class BinaryTopKWeight(TopKWeight):
    """alpha * sign(W) * m forward; `TopKWeight`'s backward: dL/dS = dL/dW_eff * W * sign(S)."""

    @staticmethod
    def forward(ctx, weight, scores, mask, use_abs: bool):
        kept = TopKWeight.forward(ctx, weight, scores, mask, use_abs)  # W*m; saves W and S
        alpha = kept.abs().sum() / mask.sum().clamp_min(1)
        return kept.sign_().mul_(alpha)  # sign(W*m) = sign(W)*m for a 0/1 mask


class BipropLayer(EdgePopupLayer):
    method = "biprop"

    def compute_weight(self) -> torch.Tensor:
        return BinaryTopKWeight.apply(self.weight, self.scores, self.mask(), self.use_abs)


# --- the method -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options(SelectionOptions):
    k: float = param(0.5, "fraction of weights KEPT per layer, in (0, 1] (biprop's grid: 0.8, "
                     "0.6, 0.5, 0.4, 0.2, 0.1)", gt=0, le=1)
    score_init: str = param("kaiming_uniform", "score distribution (reference: kaiming "
                            "uniform, a=sqrt(5): U(+-1/sqrt(fan_in)))", choices=SCORE_INITS)


class Biprop(Method):
    name = "biprop"
    paper = ("Diffenderfer & Kailkhura, Multi-Prize Lottery Ticket Hypothesis: Finding Accurate "
             "Binary Neural Networks by Pruning a Randomly Weighted Network, ICLR 2021")
    summary = "edge-popup's top-k of |scores| with kept weights alpha * sign(W) (MPT-1/32)"
    Options = Options
    packing = MASK_BITS  # exported: one bit per connection; alpha follows from the redrawn W

    def recipe(self, cfg, given):
        # edge-popup's recipes; the weights of the reference configs: CIFAR-10 scaled Kaiming
        # normal (the reference scales by 1/sqrt(1-k): `scaled_kaiming_normal_code`), ImageNet
        # signed constant.
        init = "signed_constant" if is_imagenet(cfg.model) else "scaled_kaiming_normal"
        return dict(EDGEPOPUP.recipe(cfg, given), init=init)

    def recipe_note(self) -> str:
        return (EDGEPOPUP.recipe_note() + "; weights: scaled Kaiming normal, std sqrt(2/(k "
                "fan_in)) (the reference code's 1/sqrt(1-k) form: init "
                "scaled_kaiming_normal_code), ImageNet signed constant")

    def layer(self, spec: LayerSpec, cfg) -> BipropLayer:
        o = cfg.options
        weight = init_weights(cfg.init, spec.shape, spec.shape, o.k)
        scores = init_scores(o.score_init, spec.shape, spec.shape)
        return BipropLayer(spec, weight, scores, o.k)


METHOD = Biprop()
