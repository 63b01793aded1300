"""Data sets and loaders: `build_data(cfg, device)` -> train / val / test loaders.

Data sets (`DATASETS`): mnist, cifar10, cifar100 (torchvision, downloaded into the data root),
imagenet (an ImageFolder you provide), digits (scikit-learn, offline), synthetic (generated).
Loaders (`LOADERS`): gpu (whole data set on the device), torchvision (DataLoader reference), ffcv
(.beton files), auto (ffcv for imagenet, gpu otherwise). Data root: cfg.data_root, else
$HIDDENLAB_DATA, else ~/.cache/hiddenlab. See docs/CONTRACTS.md for the batch contract.

This module is imported by the config validator: it must not import ffcv or torchvision.datasets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from hiddenlab.data.augment import Augment, resolve_augment
from hiddenlab.data.datasets import DATASETS, DataError, DatasetSpec, default_root, get_dataset, \
    resolve_root
from hiddenlab.data.loaders import LOADERS, resolve_loader

__all__ = ["DATASETS", "LOADERS", "DataBundle", "DataError", "build_data", "default_root"]


@dataclass
class DataBundle:
    train: Any
    val: Any
    test: Any
    num_classes: int
    input_shape: tuple[int, int, int]
    loader: str  # the resolved loader name
    dataset: str
    augment: str = "none"  # the resolved training augmentation preset
    root: str = ""  # the data root used

    @property
    def sizes(self) -> dict[str, int]:
        return {k: getattr(self, k).num_samples for k in ("train", "val", "test")}


def build_data(cfg, device: torch.device | str) -> DataBundle:
    """The three loaders for a trial: train shuffles and augments (deterministic in
    (cfg.seed, epoch) via `set_epoch`), val/test never do."""
    from hiddenlab.data.loaders.base import DataContext

    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # FFCV allocates on an explicit device
        device = torch.device("cuda", torch.cuda.current_device())
    spec: DatasetSpec = get_dataset(cfg.dataset)
    loader = resolve_loader(cfg.loader, spec.default_loader)
    shape = spec.input_shape(cfg)
    augment: Augment = resolve_augment(cfg.augment, cfg.model, spec.name, shape)
    ctx = DataContext(cfg=cfg, device=device, spec=spec, root=resolve_root(cfg.data_root),
                      augment=augment)
    train, val, test = LOADERS[loader].build(ctx)
    return DataBundle(train=train, val=val, test=test, num_classes=spec.num_classes(cfg),
                      input_shape=shape, loader=loader, dataset=spec.name, augment=augment.name,
                      root=str(ctx.root))
