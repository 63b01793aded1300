"""Learned dense weights: the baseline every selection method is compared with (same
architecture, same init, no biases). Also the layer a finetuned network trains."""

from __future__ import annotations

import torch
from torch import nn

from .base import LayerSpec, SelectionLayer


class DenseLayer(SelectionLayer):
    method = "dense"

    def __init__(self, spec: LayerSpec, weight: torch.Tensor):
        super().__init__(spec)
        self.weight = nn.Parameter(weight)

    def compute_weight(self) -> torch.Tensor:
        return self.weight

    def cache_key(self):
        return None  # the weight is used as is: nothing to cache


def build(spec: LayerSpec, cfg) -> DenseLayer:
    from hiddenlab.models.inits import init_weights

    # With a slot preset this draws one value per connection from the slot distribution: the
    # reference's learned baseline (one uniformly random pick of the K values) in distribution.
    return DenseLayer(spec, init_weights(cfg.resolved_init, spec.shape, spec.shape, 1.0))
