"""Selection methods: one file each, one registry.

A model asks a `LayerFactory` for its conv, linear and BatchNorm layers; the factory builds them
for the trial's method. So any model works with any method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from . import dense, edgepopup, finetune, slot, supermask
from .base import LayerSpec, SelectionLayer, selection_layers

__all__ = ["METHODS", "Method", "LayerFactory", "LayerSpec", "SelectionLayer",
           "selection_layers"]


@dataclass(frozen=True)
class Method:
    name: str
    build: Callable  # (LayerSpec, TrialConfig) -> SelectionLayer
    selects: bool  # False: learned weights (BatchNorm affine, weights trained)
    attach: Callable[[nn.Module, object], None] = lambda model, cfg: None


METHODS: dict[str, Method] = {
    "dense": Method("dense", dense.build, selects=False),
    "edgepopup": Method("edgepopup", edgepopup.build, selects=True, attach=edgepopup.attach),
    "supermask": Method("supermask", supermask.build, selects=True),
    "slot-gs": Method("slot-gs", slot.build, selects=True),
    "slot-ps": Method("slot-ps", slot.build, selects=True),
    # finetune trains dense layers whose weights are copied from a selection parent
    # (hiddenlab.models.selection.finetune.from_parent).
    "finetune": Method("finetune", dense.build, selects=False),
}


class LayerFactory:
    """Builds a model's layers for one trial config. `role` marks the first/last layer, which
    `dense_first` / `dense_last` keep dense."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.method = METHODS[cfg.method]

    def _layer(self, spec: LayerSpec, role: str | None) -> SelectionLayer:
        if (role == "first" and self.cfg.dense_first) or (role == "last" and self.cfg.dense_last):
            return dense.build(spec, self.cfg)
        return self.method.build(spec, self.cfg)

    def conv(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
             role: str | None = None) -> SelectionLayer:
        return self._layer(LayerSpec((cout, cin, kernel, kernel), stride, padding), role)

    def linear(self, fin: int, fout: int, role: str | None = None) -> SelectionLayer:
        return self._layer(LayerSpec((fout, fin)), role)

    def bn(self, channels: int) -> nn.BatchNorm2d:
        # Selection methods: non-affine (nothing but scores is trained) with running statistics.
        return nn.BatchNorm2d(channels, affine=not self.method.selects)

    def finish(self, model: nn.Module) -> nn.Module:
        self.method.attach(model, self.cfg)
        return model
