"""Slot Machines (Aladago & Torresani 2021): K fixed random values per connection, K scores; the
forward uses one value per connection, picked greedily (GS, argmax) or sampled from
softmax(scores) (PS, Gumbel-max: one exact categorical draw per connection per pass).

Values and scores are stored with K last, and the pick is an index gather (the reference
multiplies a one-hot K-tensor: K times the work). Backward: dL/dS[..., j] = dL/dW_eff * W[..., j]
for every j, selected or not.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import LayerSpec, SelectionLayer


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


def build(spec: LayerSpec, cfg) -> SlotLayer:
    from hiddenlab.models.inits import init_scores, init_weights

    shape = (*spec.shape, cfg.num_values)
    init = cfg.resolved_init
    values = init_weights(init, shape, spec.shape, 1.0)
    if cfg.score_init != "auto":
        score_init = cfg.score_init
    else:
        score_init = init if init in ("slot-code", "slot-paper") else "slot-code"
    scores = init_scores(score_init, shape, spec.shape, cfg.score_const)
    train_mode = "argmax" if cfg.method == "slot-gs" else "sample"
    return SlotLayer(spec, values, scores, train_mode, cfg.resolved_eval_mode)
