"""The GPU-resident loader (airbench style): each split is one uint8 tensor on the training device;
a batch is an index into it, augmented and normalised there with vectorised ops. No workers, no
per-image Python; the default for every data set that fits in memory."""

from __future__ import annotations

import numpy as np
import torch

from hiddenlab.data.augment import AugParams, crop_flip, sample_params
from hiddenlab.data.loaders.base import BaseLoader, DataContext
from hiddenlab.config import ConfigError


class GPULoader(BaseLoader):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, **kw):
        super().__init__(num_samples=len(labels), **kw)
        self.images = images.to(self.device, non_blocking=True)
        self.labels = labels.to(self.device, non_blocking=True)

    def __iter__(self):
        n, bs = self.num_samples, self.batch_size
        order: torch.Tensor | None = None
        params: AugParams | None = None
        if self.train:
            g = self.generator(self._next_epoch())
            order = torch.randperm(n, generator=g).to(self.device)
            if self.augment is not None:
                params = sample_params(self.augment, n, g).to(self.device)
        for start in range(0, n, bs):
            if order is None:
                x, y = self.images[start:start + bs], self.labels[start:start + bs]
            else:
                idx = order[start:start + bs]
                x, y = self.images[idx], self.labels[idx]
                if params is not None:
                    x = crop_flip(x, params[start:start + bs], self.augment.pad)
            yield self.normalizer(x), y


def build(ctx: DataContext):
    spec, cfg = ctx.spec, ctx.cfg
    if not spec.in_memory:
        raise ConfigError("loader", f"{spec.name} does not fit on the device as one tensor; use "
                          "--loader ffcv or torchvision")
    train_part = spec.arrays(cfg, ctx.root, "train")
    test = spec.arrays(cfg, ctx.root, "test")
    split = ctx.split(len(train_part))

    def make(images, labels, train: bool, batch_size: int) -> GPULoader:
        return GPULoader(images, labels, batch_size=batch_size, train=train, seed=cfg.seed,
                         device=ctx.device, normalizer=ctx.normalizer, augment=ctx.augment)

    def take(idx: np.ndarray):
        t = torch.from_numpy(idx)
        return train_part.images[t], train_part.labels[t]

    return (make(*take(split.train), True, cfg.batch_size),
            make(*take(split.val), False, cfg.eval_batch_size),
            make(test.images, test.labels, False, cfg.eval_batch_size))
