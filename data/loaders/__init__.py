"""Loader registry. Each loader lives in its own module with `build(ctx) -> (train, val, test)`;
modules are imported only when built (ffcv and torchvision import slowly)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class LoaderSpec:
    name: str
    help: str
    module: str | None  # None: `auto`, resolved per data set

    def build(self, ctx):
        return importlib.import_module(self.module).build(ctx)


LOADERS: dict[str, LoaderSpec] = {
    "auto": LoaderSpec("auto", "ffcv for imagenet, gpu for the rest", None),
    "gpu": LoaderSpec("gpu", "whole split as one uint8 tensor on the device, augmented there "
                      "(airbench style)", "hiddenlab.data.loaders.gpu"),
    "torchvision": LoaderSpec("torchvision", "torch DataLoader + torchvision transforms in "
                              "num_workers processes (the reference)",
                              "hiddenlab.data.loaders.torchvision"),
    "ffcv": LoaderSpec("ffcv", "FFCV .beton files (`hiddenlab data prepare DATASET --format ffcv`)",
                       "hiddenlab.data.loaders.ffcv"),
}


def resolve_loader(name: str, default: str) -> str:
    """The concrete loader name: `auto` -> the data set's default."""
    if name not in LOADERS:
        from hiddenlab.study.config import ConfigError

        raise ConfigError("loader", f"{name!r} is not one of {', '.join(sorted(LOADERS))}")
    return default if name == "auto" else name
