"""hiddenlab: studies of networks trained by selecting fixed random weights.

Sub-packages (each a folder at the repository root): `hiddenlab.config` (the bottom: registries
and `TrialConfig`), `hiddenlab.models` (selection methods, model families, inits),
`hiddenlab.data` (data sets and loaders), `hiddenlab.study` (the trainer, Ray Tune studies) and
`hiddenlab.analysis` (figures, tables, report).

Importing any part of hiddenlab imports this first: it fills the registries (models, methods,
data sets, loaders), then imports the plug-in modules named in $HIDDENLAB_PLUGINS, so every
process (a Ray worker too) sees the same methods, models and data sets.
"""

import importlib

from hiddenlab import config
from hiddenlab import models as _models  # noqa: F401  (registers models and methods)
from hiddenlab import data as _data  # noqa: F401  (registers data sets and loaders)

__version__ = "0.1.0"

for _plugin in config.plugins_from_env():
    importlib.import_module(_plugin)


def load(path):
    """The network of a file written by `hiddenlab export`, as a plain `torch.nn.Module` of torch
    layers (dense weights, zeros where not kept; eval mode) that needs nothing of hiddenlab to run.
    The frozen values are redrawn from the file's seed and every checksum is checked: a mismatch
    raises `hiddenlab.study.netexport.NetFileError` saying what differs."""
    from hiddenlab.study.netexport import load as _load

    return _load(path)
