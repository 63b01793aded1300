"""Selection methods: one file each, registered here with one line each.

A model asks a `LayerFactory` (models/build.py) for its layers; the factory asks the trial's
method (`METHODS`, hiddenlab.config) to build them. So any model works with any method. A method
outside hiddenlab registers itself from a module named in $HIDDENLAB_PLUGINS (docs/plugins.md).
"""

from __future__ import annotations

from hiddenlab.config import METHODS

from . import dense, edgepopup, finetune, slot_gs, slot_ps, supermask
from .layers import LayerSpec, SelectionLayer, selection_layers
from .method import Hook, Method, SelectionOptions, register

register(dense.METHOD)
register(edgepopup.METHOD)
register(supermask.METHOD)
register(slot_gs.METHOD)
register(slot_ps.METHOD)
register(finetune.METHOD)
METHODS.default = edgepopup.METHOD.name  # what `hiddenlab train` trains when no method is named

__all__ = ["METHODS", "Method", "Hook", "SelectionOptions", "LayerSpec", "SelectionLayer",
           "register", "selection_layers"]
