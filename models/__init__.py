"""Model families (one file each) and the registry of model names.

`build_model(cfg, input_shape, num_classes)` builds any model for any selection method: models
ask a `LayerFactory` for their layers. `count_params` counts connections (weight entries; no
biases, BatchNorm, scores or extra slot values) at any width and depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from . import conv, mlp, resnet, slot_conv, vgg

__all__ = ["MODELS", "ModelSpec", "build_model", "count_params", "connections"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable
    paper: str  # "edge-popup" | "slot-machines": picks recipe defaults such as augmentation
    input_shape: tuple[int, int, int] = (3, 32, 32)  # its paper's data set
    num_classes: int = 10
    depth: int | None = None  # conv families: the default depth
    dropout: float = 0.0

    @property
    def takes_depth(self) -> bool:
        return self.depth is not None


_IMAGENET = dict(input_shape=(3, 224, 224), num_classes=1000)
MODELS: dict[str, ModelSpec] = {
    "fc": ModelSpec("fc", mlp.build_mlp, "edge-popup", (1, 28, 28)),
    "lenet-300-100": ModelSpec("lenet-300-100", mlp.build_mlp, "slot-machines", (1, 28, 28)),
    "conv": ModelSpec("conv", conv.build_conv, "edge-popup", depth=6),
    **{f"conv{d}": ModelSpec(f"conv{d}", conv.build_conv, "edge-popup", depth=d)
       for d in (2, 4, 6, 8)},
    "slot-conv": ModelSpec("slot-conv", slot_conv.build_slot_conv, "slot-machines", depth=6,
                           dropout=0.5),
    **{f"slot-conv{d}": ModelSpec(f"slot-conv{d}", slot_conv.build_slot_conv, "slot-machines",
                                  depth=d, dropout=0.5) for d in (2, 4, 6)},
    "vgg19": ModelSpec("vgg19", vgg.build_vgg19, "slot-machines"),
    "resnet18": ModelSpec("resnet18", resnet.build_resnet18, "edge-popup", **_IMAGENET),
    "resnet34": ModelSpec("resnet34", resnet.build_resnet34, "edge-popup", **_IMAGENET),
    "resnet50": ModelSpec("resnet50", resnet.build_resnet50, "edge-popup", **_IMAGENET),
    "resnet101": ModelSpec("resnet101", resnet.build_resnet101, "edge-popup", **_IMAGENET),
    "wide-resnet50-2": ModelSpec("wide-resnet50-2", resnet.build_wide_resnet50_2, "edge-popup",
                                 **_IMAGENET),
    "cifar-resnet18": ModelSpec("cifar-resnet18", resnet.build_cifar_resnet18, "edge-popup"),
}


def build_model(cfg, input_shape: tuple[int, int, int] | None = None,
                num_classes: int | None = None) -> nn.Module:
    """Build cfg.model for cfg.method. Weights and scores come from the global RNG: seed first."""
    from .selection import LayerFactory

    spec = MODELS[cfg.model]
    depth = cfg.depth if cfg.depth is not None else spec.depth
    dropout = spec.dropout if cfg.dropout is None else cfg.dropout
    layers = LayerFactory(cfg)
    model = spec.build(layers, tuple(input_shape or spec.input_shape),
                       num_classes or spec.num_classes, cfg.width_mult, depth, dropout)
    return layers.finish(model)


def connections(model: nn.Module) -> int:
    from .selection import selection_layers

    return sum(layer.connections for _, layer in selection_layers(model))


def count_params(name: str, width_mult: float = 1.0, depth: int | None = None,
                 input_shape: tuple[int, int, int] | None = None,
                 num_classes: int | None = None) -> int:
    """Connections of model `name` (weights only), built on the meta device: no memory, fast."""
    from hiddenlab.study.config import TrialConfig

    cfg = TrialConfig(method="dense", model=name, width_mult=width_mult, depth=depth)
    with torch.device("meta"):
        return connections(build_model(cfg, input_shape, num_classes))
