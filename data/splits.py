"""Train / validation split: validation is held out of the training part by a fixed hash (not the
trial seed), so every trial and every machine sees the same split; `subset` then takes the first
images of the same fixed order, so smaller subsets are nested in larger ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hiddenlab.data import seeding
from hiddenlab.config import ConfigError


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # sorted int64 indices into the training part
    val: np.ndarray


def split_indices(n: int, val_size: int, subset: int | None, dataset: str) -> Split:
    if not 1 <= val_size < n:
        raise ConfigError("val_size", f"{val_size} must be in [1, {n - 1}]: {dataset}'s training "
                          f"part has {n} images")
    order = seeding.permutation(n, "val-split", dataset)
    train = order[val_size:]
    if subset is not None:
        train = train[:subset]  # more than available: all of it
    return Split(np.sort(train).astype(np.int64), np.sort(order[:val_size]).astype(np.int64))
