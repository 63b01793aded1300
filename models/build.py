"""Building a model for a trial: the model family asks a `LayerFactory` for its conv, linear and
BatchNorm layers, and the factory builds them for the trial's method. So any model works with
any method, and neither knows the other."""

from __future__ import annotations

import torch
from torch import nn

from hiddenlab.config import METHODS, MODELS, TrialConfig

from .inits import init_weights
from .selection.layers import DenseLayer, FrozenLayer, LayerSpec, SelectionLayer, \
    selection_layers


LEARNED = "dense"  # the learned-weights method: the one every model can be built with


class LayerFactory:
    """Builds a model's layers for one trial config. `role` marks the first/last layer, which the
    method's `dense_first` / `dense_last` options keep dense."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.method = METHODS.get(cfg.method)

    def _layer(self, spec: LayerSpec, role: str | None) -> SelectionLayer:
        opts = self.cfg.options
        if (role == "first" and getattr(opts, "dense_first", False)) or \
                (role == "last" and getattr(opts, "dense_last", False)):
            weight = init_weights(self.cfg.init, spec.shape, spec.shape, 1.0)
            return DenseLayer(spec, weight) if opts.dense_learned else FrozenLayer(spec, weight)
        return self.method.layer(spec, self.cfg)

    def conv(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
             role: str | None = None) -> SelectionLayer:
        return self._layer(LayerSpec((cout, cin, kernel, kernel), stride, padding), role)

    def linear(self, fin: int, fout: int, role: str | None = None) -> SelectionLayer:
        return self._layer(LayerSpec((fout, fin)), role)

    def bn(self, channels: int) -> nn.BatchNorm2d:
        # Selection methods: non-affine (nothing but scores is trained) with running statistics.
        return nn.BatchNorm2d(channels, affine=not self.method.selects)


def build_model(cfg, input_shape: tuple[int, int, int] | None = None,
                num_classes: int | None = None) -> nn.Module:
    """Build cfg.model for cfg.method. Weights and scores come from the global RNG: seed first."""
    spec = MODELS.get(cfg.model)
    depth = cfg.depth if cfg.depth is not None else spec.depth
    dropout = spec.dropout if cfg.dropout is None else cfg.dropout
    layers = LayerFactory(cfg)
    model = spec.build(layers, tuple(input_shape or spec.input_shape),
                       num_classes or spec.num_classes, cfg.width_mult, depth, dropout)
    layers.method.attach(model, cfg)
    return model


def connections(model: nn.Module) -> int:
    return sum(layer.connections for _, layer in selection_layers(model))


def count_params(name: str, width_mult: float = 1.0, depth: int | None = None,
                 input_shape: tuple[int, int, int] | None = None,
                 num_classes: int | None = None) -> int:
    """Connections of model `name` (weights only), built on the meta device: no memory, fast.
    Counted through learned weights: every method has the same connections."""
    cfg = TrialConfig(method=LEARNED, model=name, width_mult=width_mult, depth=depth)
    with torch.device("meta"):
        return connections(build_model(cfg, input_shape, num_classes))
