"""What every loader shares: the epoch counter, the seeded generator, batch counting and the
context `build_data` hands to a loader module's `build(ctx)`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from hiddenlab.data import seeding
from hiddenlab.data.augment import Augment, Normalizer
from hiddenlab.data.datasets import DatasetSpec
from hiddenlab.data.splits import Split, split_indices


@dataclass
class DataContext:
    """Everything a loader module needs, resolved once by `build_data`."""

    cfg: Any  # TrialConfig (read by attribute)
    device: torch.device
    spec: DatasetSpec
    root: Path
    augment: Augment  # the training augmentation; evaluation never augments

    @property
    def channels_last(self) -> bool:
        return bool(self.cfg.channels_last) and self.device.type == "cuda"

    @cached_property
    def normalizer(self) -> Normalizer:
        mean, std = self.spec.stats(self.cfg)
        return Normalizer(mean, std, self.device, self.channels_last)

    def split(self, n_train_part: int) -> Split:
        val = self.cfg.val_size if self.cfg.val_size is not None else \
            self.spec.default_val_size(self.cfg)
        return split_indices(n_train_part, int(val), self.cfg.subset, self.spec.name)


class BaseLoader:
    """Batches of (x float32 [B, C, H, W] normalised on the device, y int64 [B]).

    The train loader shuffles and augments from a generator seeded by (seed, epoch); `set_epoch`
    picks the epoch, and each pass advances it by one when the caller does not. The last partial
    batch is kept.
    """

    def __init__(self, *, num_samples: int, batch_size: int, train: bool, seed: int,
                 device: torch.device, normalizer: Normalizer, augment: Augment | None):
        self.num_samples, self.batch_size, self.train = num_samples, batch_size, train
        self.seed, self.device, self.normalizer = seed, device, normalizer
        self.augment = augment if train and augment is not None and augment.active else None
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _next_epoch(self) -> int:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return epoch

    def generator(self, epoch: int, stream: str = "order") -> torch.Generator:
        """CPU generator, so the order and draws do not depend on the device type."""
        return torch.Generator().manual_seed(seeding.seed_for(self.seed, epoch, stream))

    def __repr__(self) -> str:
        kind = "train" if self.train else "eval"
        return (f"{type(self).__name__}({kind}, {self.num_samples} images, batch "
                f"{self.batch_size}, {len(self)} batches, device {self.device})")
