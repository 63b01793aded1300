"""IteRand (Chijiwa et al., NeurIPS 2021): edge-popup whose pruned weights are re-drawn.

The mask is edge-popup's per-layer top-k, on the raw scores by default (the reference ranks S,
not |S|; `score_abs` ranks |S| as edge-popup does). Every `rerand_every` (K_per) optimiser steps,
in every IteRand layer, each weight the current mask prunes is replaced, independently with
probability `rerand_rate` (r), by a fresh draw W' from the trial's weight distribution:

    W <- m*W + (1 - m)*[(1 - b)*W + b*W'],   b_i ~ Bernoulli(r)

Kept weights never change, so a re-randomisation never changes the network the forward pass
computes; it changes what a score that later enters the top-k brings in. r = 0 is edge-popup
(with raw-score ranking); r = 1 re-draws every pruned weight. Scores, optimiser state and
BatchNorm are untouched. docs/methods.md#iterand has the sources.

Timing. The reference re-randomises before the forward pass of step t (global, 0-based)
whenever (t + 1) mod K_per == 0. hiddenlab's trainer calls `on_step_end(s)` after the optimiser
step s, so the hook re-randomises after step s = t - 1, i.e. when (s + 2) mod K_per == 0: the
same scores, hence the same mask, as the reference sees before step t. Two edges differ, neither
in what is evaluated: with K_per = 1 the reference also re-draws before step 0, when the pruned
weights are still untouched draws from the same distribution (a re-draw changes nothing in
distribution; hiddenlab skips it); and after the last step of a trial hiddenlab may re-draw
once more (pruned weights only: the checkpoint's frozen values and the unselected histogram
show it, no accuracy does).

Resume. The draws before step t in layer i come from a generator seeded by (seed, t, i), never
from the training random stream (which stays as it was), and the current frozen values are a
buffer of each layer, saved in every checkpoint. So the frozen values after any step are a
function of the seed, the step and the scores' history, and a trial resumed from any epoch's
checkpoint computes exactly what an uninterrupted one does (tests/test_iterand.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hiddenlab.config import SCORE_INITS, param

from ..inits import init_scores, init_weights
from .edgepopup import EdgePopupLayer
from .layers import LayerSpec
from .method import BASE_RECIPE, Hook, Method, SelectionOptions, is_imagenet
from .packing import KEPT_VALUES

# Tells the re-randomisation stream apart from any other stream hashed from the same numbers.
_STREAM = 0x17E2A4D


def draw_seed(seed: int, step: int, layer: int) -> int:
    """The 64-bit seed of the draws before step `step` in layer `layer`: a hash (numpy's
    SeedSequence) of the three, so nearby (seed, step, layer) give unrelated streams."""
    state = np.random.SeedSequence([seed, step, layer, _STREAM]).generate_state(1, np.uint64)
    return int(state[0])


class IteRandLayer(EdgePopupLayer):
    """An edge-popup layer whose pruned frozen weights can be re-drawn."""

    method = "iterand"

    def cache_key(self):
        # The evaluation weight W*m survives a re-draw (only pruned entries change), but a
        # weight changed any other way must not be served from the cache.
        return (self.scores._version, self.weight._version)

    @torch.no_grad()
    def rerandomize(self, fresh: torch.Tensor, picks: torch.Tensor) -> None:
        """W <- m*W + (1-m)*[(1-b)*W + b*W'] with b = `picks`, W' = `fresh`, m the current mask."""
        replace = picks & ~self.mask()
        self.weight.copy_(torch.where(replace, fresh, self.weight))


class Rerandomize(Hook):
    """Re-draws the pruned weights of every IteRand layer every `every` steps (module doc)."""

    def __init__(self, model: nn.Module, init: str, k: float, every: int, rate: float,
                 seed: int):
        self.layers = [m for m in model.modules() if isinstance(m, IteRandLayer)]
        self.init, self.k, self.every, self.rate, self.seed = init, k, every, rate, seed

    def on_step_end(self, step: int) -> None:
        before = step + 1  # the reference's step t, whose forward pass follows
        if (before + 1) % self.every:
            return
        for index, layer in enumerate(self.layers):
            fresh, picks = self.draw(before, index, layer)
            layer.rerandomize(fresh, picks)

    def draw(self, before: int, index: int, layer: IteRandLayer):
        """(W', b) for `layer` before step `before`: W' from the trial's weight distribution
        (scaled inits scaled by k, as at construction), b ~ Bernoulli(rate), both from the
        (seed, step, layer) stream; the global random state is restored afterwards."""
        shape = tuple(layer.weight.shape)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(draw_seed(self.seed, before, index))
            fresh = init_weights(self.init, shape, shape, self.k)
            picks = torch.rand(shape) < self.rate
        return fresh.to(layer.weight), picks.to(layer.weight.device)


# --- the method -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options(SelectionOptions):
    k: float = param(0.5, "fraction of weights KEPT per layer, in (0, 1] (IteRand: Conv6 0.5, "
                     "ResNets 0.4, ImageNet 0.3)", gt=0, le=1)
    score_init: str = param("kaiming_uniform_relu", "score distribution (IteRand reference: "
                            "kaiming uniform, a=0: U(+-sqrt(6/fan_in)))", choices=SCORE_INITS)
    score_abs: bool = param(False, "rank |score| as edge-popup does, instead of the raw score "
                            "(the IteRand reference)")
    rerand_every: int = param(300, "K_per: re-draw pruned weights every this many optimiser "
                              "steps (IteRand: 300 on CIFAR-10, 1000 on ImageNet)", ge=1,
                              le=10**9)
    rerand_rate: float = param(0.1, "r: each pruned weight is re-drawn with this probability "
                               "(0: edge-popup, 1: all of them)", ge=0, le=1)


# IteRand's recipes (docs/recipes.md#iterand, [IR-code] config.yaml).
CONV_RECIPE = dict(BASE_RECIPE, init="kaiming_uniform", lr=0.3)
RESNET_RECIPE = dict(BASE_RECIPE, init="kaiming_uniform", weight_decay=5e-4)
# ImageNet: 5 warm-up epochs, cosine to 0 at epoch 100. The reference then trains 5 more epochs
# at lr 1e-5 (105 in all), which a cosine schedule cannot express and which hardly move the
# scores; hiddenlab stops at 100.
IMAGENET_RECIPE = dict(BASE_RECIPE, init="signed_constant", warmup_epochs=5.0)


class IteRand(Method):
    name = "iterand"
    paper = ("Chijiwa et al., Pruning Randomly Initialized Neural Networks with Iterative "
             "Randomization, NeurIPS 2021")
    summary = ("edge-popup on raw scores; every K_per steps each pruned weight is re-drawn "
               "with probability r")
    Options = Options
    # exported: the mask and the kept values, since the seed no longer redraws re-drawn weights
    packing = KEPT_VALUES

    def recipe(self, cfg, given):
        if is_imagenet(cfg.model):
            return dict(IMAGENET_RECIPE)
        return dict(RESNET_RECIPE if "resnet" in cfg.model else CONV_RECIPE)

    def recipe_note(self) -> str:
        return ("CIFAR-10: SGD momentum 0.9, cosine, no warm-up, batch 128, 100 epochs, Kaiming "
                "uniform weights; Conv nets lr 0.3, wd 1e-4 (k 0.5); ResNets lr 0.1, wd 5e-4 "
                "(k 0.4); K_per 300, r 0.1. ImageNet: lr 0.1, wd 1e-4, batch 128, 5 warm-up "
                "epochs, 100 epochs (the reference's 5 extra epochs at lr 1e-5 dropped), signed "
                "constant weights, k 0.3, K_per 1000. k and K_per are not set by the recipe: "
                "give them per model")

    def layer(self, spec: LayerSpec, cfg) -> IteRandLayer:
        o = cfg.options
        weight = init_weights(cfg.init, spec.shape, spec.shape, o.k)
        scores = init_scores(o.score_init, spec.shape, spec.shape)
        return IteRandLayer(spec, weight, scores, o.k, o.score_abs)

    def hooks(self, model: nn.Module, cfg) -> list[Hook]:
        o = cfg.options
        return [Rerandomize(model, cfg.init, o.k, o.rerand_every, o.rerand_rate, cfg.seed)]


METHOD = IteRand()
