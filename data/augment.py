"""Augmentation presets, the vectorised batch augmentations and normalisation.

Presets (cfg.augment; `auto` resolves by recipe):
- `crop-flip`: random crop with zero padding (4 px at 32x32, H/8 in general) + horizontal flip;
  on ImageNet: random resized crop + flip (evaluation: resize 256 + centre crop 224).
- `flip`: horizontal flip only (Slot Machines' reference code).
- `none`.
`auto`: CIFAR-10/100 -> `flip` for the Slot Machines models (slot-conv*, lenet-300-100, vgg19),
else `crop-flip` (edge-popup: conv*, fc, resnet*, cifar-resnet18, wide-resnet50-2);
ImageNet -> `crop-flip`; MNIST, Fashion-MNIST, digits, synthetic -> `none` (no recipe augments
them: the papers train their MNIST models unaugmented, Fashion-MNIST stands in for MNIST; the
synthetic set is for quick, exact checks).

Crop and flip are drawn per image from a generator seeded by (cfg.seed, epoch), once per epoch,
and applied per batch with two gathers (no per-image Python loop), so the gpu and ffcv loaders
run the same code on the device. uint8 images are normalised on the device as the last step:
moving uint8 is 4x less traffic than float32, and sharing one normalisation makes the loaders'
evaluation batches bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hiddenlab.config import MODELS, ConfigError

PRESETS = ("none", "flip", "crop-flip")


@dataclass(frozen=True)
class Augment:
    name: str  # the resolved preset
    pad: int = 0  # random-crop padding in pixels; 0: no crop
    flip: bool = False
    resized_crop: bool = False  # ImageNet: random resized crop, done by the decoder

    @property
    def active(self) -> bool:
        return bool(self.pad or self.flip or self.resized_crop)


def crop_padding(height: int) -> int:
    """4 px for 32x32 (the CIFAR recipe), scaled with the image for other sizes."""
    return max(1, round(height / 8))


def recipe_preset(model: str, dataset: str) -> str:
    if dataset in ("mnist", "fashion-mnist", "digits", "synthetic"):
        return "none"
    if dataset == "imagenet":
        return "crop-flip"
    if MODELS.get(model).paper == "slot-machines":  # the reference: horizontal flip only
        return "flip"
    return "crop-flip"


def resolve_augment(augment: str, model: str, dataset: str, shape: tuple[int, int, int]) -> Augment:
    name = recipe_preset(model, dataset) if augment == "auto" else augment
    if name not in PRESETS:
        raise ConfigError("augment", f"{name!r} is not one of auto, {', '.join(PRESETS)}")
    if name == "none":
        return Augment(name)
    if name == "flip":
        return Augment(name, flip=True)
    if dataset == "imagenet":
        return Augment(name, flip=True, resized_crop=True)
    return Augment(name, pad=crop_padding(shape[1]), flip=True)


@dataclass
class AugParams:
    """Per-image draws for one epoch, indexed by position in the epoch's order."""

    dy: torch.Tensor  # int64 [N], crop offset in the padded image, 0..2*pad
    dx: torch.Tensor
    flip: torch.Tensor  # bool [N]

    def to(self, device) -> "AugParams":
        return AugParams(self.dy.to(device), self.dx.to(device), self.flip.to(device))

    def __getitem__(self, s: slice) -> "AugParams":
        return AugParams(self.dy[s], self.dx[s], self.flip[s])


def sample_params(aug: Augment, n: int, generator: torch.Generator) -> AugParams:
    """Drawn on the CPU so the same (seed, epoch) gives the same images on any device."""
    hi = 2 * aug.pad + 1
    dy = torch.randint(0, hi, (n,), generator=generator)
    dx = torch.randint(0, hi, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5 if aug.flip else torch.zeros(n, dtype=torch.bool)
    return AugParams(dy, dx, flip)


def crop_flip(x: torch.Tensor, p: AugParams, pad: int) -> torch.Tensor:
    """Random crop (zero padding `pad`, offsets p.dy/p.dx) then horizontal flip (p.flip), for a
    uint8 batch [B, C, H, W]. Matches torchvision RandomCrop(H, padding=pad) followed by
    RandomHorizontalFlip for the same offsets and flips."""
    b, c, h, w = x.shape
    dev = x.device
    cols = torch.arange(w, device=dev).expand(b, w)
    cols = torch.where(p.flip[:, None], w - 1 - cols, cols)
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
        rows = (p.dy[:, None] + torch.arange(h, device=dev)).view(b, 1, h, 1)
        x = x.gather(2, rows.expand(b, c, h, w + 2 * pad))
        cols = cols + p.dx[:, None]
    return x.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))


def flip_only(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Horizontal flip of the images where `flip` (any [B, C, H, W] batch)."""
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


class Normalizer:
    """uint8 [B, C, H, W] -> float32 (x/255 - mean)/std on the batch's device, channels-last
    memory format where asked."""

    def __init__(self, mean, std, device: torch.device, channels_last: bool):
        shape = (1, len(mean), 1, 1)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(shape)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(shape)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32).div_(255.0).sub_(self.mean).div_(self.std)
        return x.contiguous(memory_format=self.memory_format)
