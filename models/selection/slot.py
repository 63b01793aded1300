"""Slot Machines (Aladago & Torresani 2021): the layer and options that slot_gs.py and slot_ps.py
share.

Slot Machines (Aladago & Torresani 2021): K fixed random values per connection, K scores; the
forward uses one value per connection, picked greedily (GS, argmax) or sampled from
softmax(scores) (PS, Gumbel-max: one exact categorical draw per connection per pass).

Values and scores are stored with K last, and the pick is an index gather (the reference
multiplies a one-hot K-tensor: K times the work). Backward: dL/dS[..., j] = dL/dW_eff * W[..., j]
for every j, selected or not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hiddenlab.config import SCORE_INITS, param

from ..inits import init_scores, init_weights
from .layers import LayerSpec, SelectionLayer
from .method import BASE_RECIPE, Method, SelectionOptions
from .packing import INDEX_BITS


class SlotGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, scores, index):
        ctx.save_for_backward(values)
        return values.gather(-1, index.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def backward(ctx, grad):
        (values,) = ctx.saved_tensors
        return None, grad.unsqueeze(-1) * values, None


def gumbel_argmax(scores: torch.Tensor) -> torch.Tensor:
    """A sample of Categorical(softmax(scores)) along the last axis."""
    gumbel = -torch.empty_like(scores).exponential_().log()
    return (scores + gumbel).argmax(-1)


class SlotLayer(SelectionLayer):
    method = "slot"

    def __init__(self, spec: LayerSpec, values: torch.Tensor, scores: torch.Tensor,
                 train_mode: str, eval_mode: str):
        super().__init__(spec)
        assert values.shape[:-1] == spec.shape, (values.shape, spec.shape)
        self.register_buffer("weight", values)  # (*shape, K)
        self.scores = nn.Parameter(scores)
        self.train_mode = train_mode  # "argmax" (GS) or "sample" (PS)
        self.eval_mode = eval_mode

    @property
    def K(self) -> int:
        return self.weight.shape[-1]

    def _mode(self) -> str:
        return self.train_mode if self.training else self.eval_mode

    def index(self) -> torch.Tensor:
        with torch.no_grad():
            if self._mode() == "sample":
                return gumbel_argmax(self.scores)
            return self.scores.argmax(-1)

    def compute_weight(self) -> torch.Tensor:
        return SlotGather.apply(self.weight, self.scores, self.index())

    def cache_key(self):
        return None if self._mode() == "sample" else self.scores._version

    @torch.no_grad()
    def selection(self):
        return self.scores.argmax(-1)


# --- what slot-gs and slot-ps share (each has its own file with its recipe) -----------------------
@dataclass(frozen=True)
class SlotOptions(SelectionOptions):
    K: int = param(8, "values per connection", ge=2, le=4096)
    score_init: str | None = param(None, "score distribution (default: the init preset's own, "
                                   "slot-code or slot-paper)", choices=SCORE_INITS)
    eval_mode: str = param("argmax", "evaluation pick: argmax (deterministic) or sample",
                           choices=("argmax", "sample"))


SLOT_INITS = ("slot-code", "slot-paper")   # presets that define values and scores together


def slot_recipe() -> dict:
    """The paper's schedule: SGD with warm restarts at epochs 25 and 75 of 200, momentum 0.9,
    batch 128, Glorot-uniform values (docs/recipes.md). With other epochs the restarts keep
    their place in the run (hiddenlab.config.fit_schedule)."""
    return dict(BASE_RECIPE, init="slot-code", schedule="sgdr", restarts=(25, 75), epochs=200)


class SlotMethod(Method):
    """slot-gs and slot-ps: one layer, a training pick of `train_pick`."""

    train_pick = "argmax"
    Options = SlotOptions
    packing = INDEX_BITS  # exported: ceil(log2 K) bits per connection

    def values_per_connection(self, opts) -> int:
        return opts.K

    def kept_fraction(self, opts) -> float:
        return 1.0

    def layer(self, spec: LayerSpec, cfg) -> SlotLayer:
        o = cfg.options
        shape = (*spec.shape, o.K)
        values = init_weights(cfg.init, shape, spec.shape, 1.0)
        score_init = o.score_init or (cfg.init if cfg.init in SLOT_INITS else "slot-code")
        scores = init_scores(score_init, shape, spec.shape)
        return SlotLayer(spec, values, scores, self.train_pick, o.eval_mode)
