"""Model families (one file each), registered in `MODELS` (hiddenlab.config) by name, and the
selection methods (`selection/`, registered in `METHODS`).

`build_model(cfg, input_shape, num_classes)` (models/build.py) builds any model for any selection
method: models ask a `LayerFactory` for their layers. `count_params` counts connections (weight
entries; no biases, BatchNorm, scores or extra slot values) at any width and depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from hiddenlab.config import MODELS

# `selection` registers the methods on import.
from . import conv, mlp, resnet, selection, slot_conv, vgg  # noqa: F401
from .build import build_model, connections, count_params


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
_SPECS = [
    ModelSpec("fc", mlp.build_mlp, "edge-popup", (1, 28, 28)),
    ModelSpec("lenet-300-100", mlp.build_mlp, "slot-machines", (1, 28, 28)),
    ModelSpec("conv", conv.build_conv, "edge-popup", depth=6),
    *[ModelSpec(f"conv{d}", conv.build_conv, "edge-popup", depth=d) for d in (2, 4, 6, 8)],
    ModelSpec("slot-conv", slot_conv.build_slot_conv, "slot-machines", depth=6, dropout=0.5),
    *[ModelSpec(f"slot-conv{d}", slot_conv.build_slot_conv, "slot-machines", depth=d,
                dropout=0.5) for d in (2, 4, 6)],
    ModelSpec("vgg19", vgg.build_vgg19, "slot-machines"),
    ModelSpec("resnet18", resnet.build_resnet18, "edge-popup", **_IMAGENET),
    ModelSpec("resnet34", resnet.build_resnet34, "edge-popup", **_IMAGENET),
    ModelSpec("resnet50", resnet.build_resnet50, "edge-popup", **_IMAGENET),
    ModelSpec("resnet101", resnet.build_resnet101, "edge-popup", **_IMAGENET),
    ModelSpec("wide-resnet50-2", resnet.build_wide_resnet50_2, "edge-popup", **_IMAGENET),
    ModelSpec("cifar-resnet18", resnet.build_cifar_resnet18, "edge-popup"),
]
for _spec in _SPECS:
    MODELS.add(_spec.name, _spec)

__all__ = ["MODELS", "ModelSpec", "build_model", "count_params", "connections"]
