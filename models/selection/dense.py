"""dense: learned weights, the baseline every selection method is compared with (same
architecture, same init, no biases)."""

from __future__ import annotations

from dataclasses import dataclass

from hiddenlab.config import MethodOptions

from ..inits import init_weights
from .layers import DenseLayer, LayerSpec
from .method import BASE_RECIPE, IMAGENET_RECIPE, Method, is_imagenet
from .packing import FLOATS

# The lottery-ticket Adam recipe (docs/recipes.md): batch 60, no decay, constant rate, with these
# per-model learning rates; 3e-4 elsewhere.
ADAM_LR = {"fc": 1.2e-3, "lenet-300-100": 1.2e-3, "conv2": 2e-4, "conv4": 3e-4, "conv6": 3e-4,
           "conv8": 3e-4}


@dataclass(frozen=True)
class Options(MethodOptions):
    pass


class Dense(Method):
    name = "dense"
    paper = "learned weights (the papers' baselines)"
    summary = "the same network with ordinary trained weights"
    Options = Options
    selects = False
    packing = FLOATS  # exported: the learned weights

    def recipe(self, cfg, given):
        if is_imagenet(cfg.model):  # the same recipe as edge-popup, with affine BatchNorm
            return {**BASE_RECIPE, **IMAGENET_RECIPE}
        if given.get("optimizer") == "adam":
            return dict(BASE_RECIPE, optimizer="adam", lr=ADAM_LR.get(cfg.model, 3e-4),
                        batch_size=60, weight_decay=0.0, schedule="constant")
        # SGD at 0.01: the paper's 0.1 does not converge for these networks.
        return dict(BASE_RECIPE, lr=0.01)

    def recipe_note(self) -> str:
        return ("SGD lr 0.01, momentum 0.9, wd 1e-4, cosine, batch 128, 100 epochs; with "
                "--optimizer adam the lottery-ticket recipe (batch 60, no decay, constant lr "
                "1.2e-3 FC, 2e-4 Conv2, 3e-4 Conv4-8); ImageNet models: edge-popup's recipe")

    def layer(self, spec: LayerSpec, cfg) -> DenseLayer:
        # With a slot preset this draws one value per connection from the slot distribution: the
        # reference's learned baseline (one uniformly random pick of the K values) in distribution.
        return DenseLayer(spec, init_weights(cfg.init, spec.shape, spec.shape, 1.0))


METHOD = Dense()
