"""The plug-in interface of a selection method, and the trainer hooks a method can add.

A method is one file under models/selection/ holding its options dataclass (`Options`), its recipe
defaults (`recipe`), its layer(s), its hooks and `METHOD = SomeMethod()`; registering it is one
line in `models/selection/__init__.py` (or, outside hiddenlab, a module named in
$HIDDENLAB_PLUGINS that calls `register`). The trainer, the study runner and the exporter ask
`METHODS` (hiddenlab.config), never a method name. docs/plugins.md walks through a new method.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, Mapping

from torch import nn

from hiddenlab.config import METHODS, MODELS, MethodOptions, param

from ..build import build_model
from .layers import DenseLayer, FrozenLayer, LayerSpec, SelectionLayer, selection_histograms, \
    selection_layers
from .packing import FLOATS, REDRAWN, Packing


@dataclass(frozen=True)
class SelectionOptions(MethodOptions):
    """Options every selection method takes: dense first/last layers. The edge-popup reference
    keeps them dense with frozen random weights (all kept); `dense_learned` trains them instead."""

    dense_first: bool = param(False, "first layer dense: all its frozen weights kept")
    dense_last: bool = param(False, "last layer dense: all its frozen weights kept")
    dense_learned: bool = param(False, "train the dense first/last layers (at the method's lr) "
                                "instead of keeping them frozen as the reference does")


# Recipe values every method starts from (docs/recipes.md); a method's `recipe` overrides them.
BASE_RECIPE: dict[str, Any] = dict(
    init="kaiming_normal", optimizer="sgd", lr=0.1, momentum=0.9, nesterov=False,
    weight_decay=1e-4, schedule="cosine", warmup_epochs=0.0, milestones=(), gamma=0.1,
    restarts=(), epochs=100, batch_size=128, label_smoothing=0.0)


# The ImageNet recipe of edge-popup (reference configs/largescale), shared by the methods that run it.
IMAGENET_RECIPE = dict(lr=0.256, momentum=0.875, weight_decay=3.0517578125e-05, batch_size=256,
                       schedule="cosine", warmup_epochs=5.0, label_smoothing=0.1, epochs=100)


def is_imagenet(model: str) -> bool:
    return MODELS.get(model).num_classes == 1000


class Hook:
    """What the trainer calls around the loop (open_lth-style callbacks); every method may add
    some. `step` counts optimiser steps from 0 over the whole trial, so a hook that depends only
    on (seed, step) resumes exactly."""

    def on_step_end(self, step: int) -> None:
        pass

    def before_eval(self) -> None:
        pass

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """Extra per-epoch metrics."""
        return {}


class Method:
    """A selection method (or learned baseline) as the rest of hiddenlab sees it."""

    name: str = ""
    paper: str = ""                      # citation of the paper it comes from
    summary: str = ""                    # one line for `hiddenlab methods`
    Options: type[MethodOptions] = MethodOptions
    selects: bool = True                 # False: learned weights (BatchNorm affine)
    samples_in_training: bool = False    # trains on sampled networks (BatchNorm recalibration)

    # --- recipe ---------------------------------------------------------------------------------
    def recipe(self, cfg, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults of the shared `recipe` fields for `cfg` (its non-recipe fields and options
        are final; `given` holds the recipe fields set explicitly)."""
        return dict(BASE_RECIPE)

    def recipe_note(self) -> str:
        """Where the recipe comes from and what depends on what, for `hiddenlab methods`."""
        return ""

    # --- what the options mean --------------------------------------------------------------------
    def kept_fraction(self, opts) -> float:
        return float(getattr(opts, "k", 1.0))

    def values_per_connection(self, opts) -> int:
        return 1

    def eval_mode(self, opts) -> str:
        return getattr(opts, "eval_mode", "deterministic")

    # --- building --------------------------------------------------------------------------------
    def prepare(self, cfg):
        """The config the trial really runs (finetune: the parent's network and data)."""
        return cfg

    def preflight(self, cfg) -> None:
        """Checks that need the file system (a finetune parent exists); ConfigError if not."""

    def layer(self, spec: LayerSpec, cfg) -> SelectionLayer:
        raise TypeError(f"{self.name} builds no layers of its own (it overrides build_model)")

    def build_model(self, cfg, input_shape, num_classes) -> nn.Module:
        return build_model(cfg, input_shape, num_classes)

    def attach(self, model: nn.Module, cfg) -> None:
        """After the model is built (e.g. a global top-k pre-forward hook)."""

    def hooks(self, model: nn.Module, cfg) -> list[Hook]:
        return []

    # --- finetuning and saving ------------------------------------------------------------------
    def finetune_parent_error(self, opts) -> str | None:
        """Why a finetune trial cannot start from this method's network, or None."""
        if not self.selects:
            return f"{self.name} selects nothing: finetune starts from a selection method"
        if self.eval_mode(opts) == "sample":
            return ("it evaluates by sampling, so its selected weights are not one network "
                    "(train it with a deterministic eval_mode)")
        return None

    def artifacts(self, model: nn.Module) -> dict[str, str]:
        """Small files saved at the end of a trial."""
        if not self.selects:
            return {}
        return {"selection.json": json.dumps(selection_histograms(selection_layers(model)))}

    def child_fields(self, parent_ref: str, epoch: int | None) -> dict[str, Any]:
        """Fields linking a child trial of this method to a parent (methods that have parents)."""
        raise TypeError(f"{self.name} takes no parent")

    inherits: tuple[str, ...] = ()       # fields a child of this method takes from its parent

    # --- exporting (hiddenlab.study.netexport) ----------------------------------------------------
    packing: Packing = FLOATS            # how an exported file stores this method's layers

    def packing_of(self, layer: SelectionLayer) -> Packing:
        """The packing of one layer of this method's model: its own layers use `packing`; a
        frozen dense first/last layer is redrawn, a learned one stored as floats."""
        if isinstance(layer, FrozenLayer):
            return REDRAWN
        if isinstance(layer, DenseLayer):
            return FLOATS
        return self.packing

    def exported_config(self, cfg):
        """(config, note): the one network an exported file holds. Where evaluation samples, no
        single network was evaluated: the file holds the deterministic counterpart (the other
        `eval_mode`: Zhou's expected mask, slot-ps's argmax), and the note says so."""
        if self.eval_mode(cfg.options) != "sample":
            return cfg, None
        field = next(f for f in fields(cfg.options) if f.name == "eval_mode")
        other = [c for c in field.metadata["choices"] if c != "sample"]
        if len(other) != 1:
            raise TypeError(f"{self.name}: eval_mode has no single deterministic choice")
        note = (f"the trial evaluated sampled networks (eval_mode sample); this file holds its "
                f"deterministic network (eval_mode {other[0]}), which the trial never evaluated")
        return cfg.replace(eval_mode=other[0]), note


def register(method: Method) -> Method:
    """Make `method` known to every part of hiddenlab (one line per method)."""
    return METHODS.add(method.name, method)


