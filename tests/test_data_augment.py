"""The vectorised crop/flip against torchvision's per-image transforms, and normalisation."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.functional as TF

from hiddenlab.data.augment import AugParams, Augment, Normalizer, crop_flip, flip_only, sample_params


def reference(x: torch.Tensor, p: AugParams, pad: int) -> torch.Tensor:
    """torchvision's RandomCrop(padding=pad) + RandomHorizontalFlip, one image at a time."""
    h, w = x.shape[-2:]
    out = []
    for img, dy, dx, f in zip(x, p.dy.tolist(), p.dx.tolist(), p.flip.tolist()):
        img = TF.crop(TF.pad(img, [pad]), dy, dx, h, w) if pad else img
        out.append(TF.hflip(img) if f else img)
    return torch.stack(out)


@pytest.mark.parametrize("pad, shape", [(4, (3, 32, 32)), (1, (1, 8, 8)), (0, (3, 10, 12)),
                                        (2, (2, 9, 13))])
def test_crop_flip_matches_torchvision(pad, shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, *shape), dtype=torch.uint8, generator=g)
    p = sample_params(Augment("crop-flip", pad=pad, flip=True), 64, g)
    assert p.dy.min() >= 0 and p.dy.max() <= 2 * pad and p.flip.any() and not p.flip.all()
    assert torch.equal(crop_flip(x, p, pad), reference(x, p, pad))


def test_crop_shifts_a_pixel_and_pads_with_zeros():
    x = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    x[0, 0, 3, 5] = 255
    # offsets dy=1, dx=4 in the 2-padded image: the content moves by (+1, -2)
    p = AugParams(torch.tensor([1]), torch.tensor([4]), torch.tensor([False]))
    y = crop_flip(x, p, 2)
    assert y[0, 0, 4, 3] == 255 and y.sum() == 255
    # the far corner shift brings in zero padding on two sides
    x = torch.full((1, 1, 8, 8), 7, dtype=torch.uint8)
    y = crop_flip(x, AugParams(torch.tensor([4]), torch.tensor([0]), torch.tensor([True])), 2)
    assert (y[0, 0, -2:] == 0).all() and (y[0, 0, :, -2:] == 0).all() and (y[0, 0, :6, :6] == 7).all()


def test_flip_and_identity():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.uint8).view(2, 3, 4, 5)
    flip = torch.tensor([True, False])
    y = crop_flip(x, AugParams(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), flip), 0)
    assert torch.equal(y[0], x[0].flip(-1)) and torch.equal(y[1], x[1])
    assert torch.equal(flip_only(x, flip), y)
    none = AugParams(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long),
                     torch.zeros(2, dtype=torch.bool))
    assert torch.equal(crop_flip(x, none, 0), x)


def test_augmentation_statistics():
    g = torch.Generator().manual_seed(1)
    p = sample_params(Augment("crop-flip", pad=4, flip=True), 20_000, g)
    assert abs(p.flip.float().mean().item() - 0.5) < 0.02
    counts = torch.bincount(p.dx, minlength=9).float() / 20_000
    assert counts.min() > 0.09 and counts.max() < 0.13  # uniform over 0..8
    flip_off = sample_params(Augment("crop-flip", pad=4, flip=False), 100, g)
    assert not flip_off.flip.any()


def test_normalizer():
    n = Normalizer((0.5, 0.25), (0.5, 0.25), torch.device("cpu"), channels_last=False)
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 2, 1, 2).contiguous()
    y = n(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y[0, 0], torch.tensor([[-1.0, 1.0]]))
    assert torch.allclose(y[0, 1], torch.tensor([[-1.0, 3.0]]))
    cl = Normalizer((0.5,) * 3, (0.5,) * 3, torch.device("cpu"), channels_last=True)
    assert cl(torch.zeros(2, 3, 4, 4, dtype=torch.uint8)).is_contiguous(memory_format=torch.channels_last)
