"""The reference loader: a torch DataLoader over the torchvision dataset (or an ImageFolder),
torchvision transforms in `cfg.num_workers` worker processes, uint8 batches moved to the device
and normalised there (the same last step as the other loaders).

Determinism: each training image's transform runs under torch's RNG seeded by
(seed, epoch, image index), so the augmentation of an image does not depend on the number of
workers or which worker gets it; the order is a permutation drawn from (seed, epoch).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info
from torchvision import transforms as T

from hiddenlab.data import seeding
from hiddenlab.data.augment import Augment
from hiddenlab.data.loaders.base import BaseLoader, DataContext


def _to_uint8_tensor(img) -> torch.Tensor:
    """PIL image -> uint8 [C, H, W]; tensors (digits, synthetic) pass through."""
    return img if isinstance(img, torch.Tensor) else T.functional.pil_to_tensor(img)


def train_transform(aug: Augment | None, spec, shape) -> T.Compose:
    steps = []
    if spec.name == "imagenet":
        if aug is not None and aug.resized_crop:
            steps.append(T.RandomResizedCrop(spec.resolution))
        else:
            steps += [T.Resize(spec.eval_resize), T.CenterCrop(spec.resolution)]
    elif aug is not None and aug.pad:
        steps.append(T.RandomCrop(shape[1:], padding=aug.pad))
    if aug is not None and aug.flip:
        steps.append(T.RandomHorizontalFlip())
    steps.append(T.Lambda(_to_uint8_tensor))
    return T.Compose(steps)


def eval_transform(spec) -> T.Compose:
    steps = [T.Resize(spec.eval_resize), T.CenterCrop(spec.resolution)] if spec.name == "imagenet" else []
    return T.Compose(steps + [T.Lambda(_to_uint8_tensor)])


class _TransformedSubset(Dataset):
    """base[indices[i]] through `transform`; random transforms seeded per image."""

    def __init__(self, base, indices: np.ndarray, transform, seed: int, random: bool):
        self.base, self.indices, self.transform = base, indices, transform
        self.seed, self.random, self.epoch = seed, random, 0

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = int(self.indices[i])
        img, label = self.base[j]
        if not self.random:
            return self.transform(img), label
        s = seeding.seed_for(self.seed, self.epoch, "augment", j)
        # transforms draw from the CPU generator only; torch.manual_seed would also queue a
        # CUDA seeding with a recorded stack trace (~0.2 ms per image)
        if get_worker_info() is not None:  # a worker process owns its RNG
            torch.default_generator.manual_seed(s)
            return self.transform(img), label
        with torch.random.fork_rng(devices=[]):  # in-process: leave the trainer's RNG alone
            torch.default_generator.manual_seed(s)
            return self.transform(img), label


class TorchvisionLoader(BaseLoader):
    def __init__(self, dataset: _TransformedSubset, *, ctx: DataContext, train: bool,
                 batch_size: int):
        super().__init__(num_samples=len(dataset), batch_size=batch_size, train=train,
                         seed=ctx.cfg.seed, device=ctx.device, normalizer=ctx.normalizer,
                         augment=ctx.augment)
        self.dataset, self.num_workers = dataset, int(ctx.cfg.num_workers)

    def __iter__(self):
        sampler = None
        epoch = self._next_epoch() if self.train else 0
        if self.train:
            self.dataset.epoch = epoch  # workers are forked per epoch and see it
            sampler = torch.randperm(self.num_samples, generator=self.generator(epoch)).tolist()
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler,
                            shuffle=False, num_workers=self.num_workers, drop_last=False,
                            pin_memory=self.device.type == "cuda",
                            # a generator of our own: the default would draw worker seeds from
                            # (and advance) the trainer's global RNG
                            generator=self.generator(epoch, "workers"))
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            yield self.normalizer(x), y.to(self.device, torch.int64, non_blocking=True)


def build(ctx: DataContext):
    spec, cfg = ctx.spec, ctx.cfg
    shape = spec.input_shape(cfg)
    train_part = spec.torch_dataset(cfg, ctx.root, "train")
    test = spec.torch_dataset(cfg, ctx.root, "test")
    split = ctx.split(len(train_part))
    aug = ctx.augment if ctx.augment.active else None
    ev = eval_transform(spec)

    def make(base, idx, transform, train: bool, batch_size: int) -> TorchvisionLoader:
        ds = _TransformedSubset(base, idx, transform, cfg.seed, random=train and aug is not None)
        return TorchvisionLoader(ds, ctx=ctx, train=train, batch_size=batch_size)

    return (make(train_part, split.train, train_transform(aug, spec, shape), True, cfg.batch_size),
            make(train_part, split.val, ev, False, cfg.eval_batch_size),
            make(test, np.arange(len(test)), ev, False, cfg.eval_batch_size))
