"""Loader registry. Each loader lives in its own module with `build(ctx) -> (train, val, test)`;
modules are imported only when built (ffcv and torchvision import slowly)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from hiddenlab.config import LOADERS


@dataclass(frozen=True)
class LoaderSpec:
    name: str
    help: str
    module: str | None  # None: `auto`, resolved per data set

    def build(self, ctx):
        return importlib.import_module(self.module).build(ctx)


for _spec in (
    LoaderSpec("auto", "ffcv for imagenet, gpu for the rest", None),
    LoaderSpec("gpu", "whole split as one uint8 tensor on the device, augmented there (airbench "
               "style)", "hiddenlab.data.loaders.gpu"),
    LoaderSpec("torchvision", "torch DataLoader + torchvision transforms in num_workers "
               "processes (the reference)", "hiddenlab.data.loaders.torchvision"),
    LoaderSpec("ffcv", "FFCV .beton files (`hiddenlab data prepare DATASET --format ffcv`)",
               "hiddenlab.data.loaders.ffcv"),
):
    LOADERS.add(_spec.name, _spec)


def resolve_loader(name: str, default: str) -> str:
    """The concrete loader name: `auto` -> the data set's default."""
    LOADERS.get(name)  # refuses an unknown name, listing the others
    return default if name == "auto" else name
