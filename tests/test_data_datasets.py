"""Data sets, splits, presets, the gpu loader contract and the error cases (no FFCV here)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from hiddenlab.data import DATASETS, LOADERS, DataError, build_data
from hiddenlab.data.augment import resolve_augment
from hiddenlab.data.datasets import default_root, synthetic_images
from hiddenlab.data.splits import split_indices
from hiddenlab.data.testing import cifar_checksums_off, make_cfg, write_cifar, write_image_folder
from hiddenlab.config import ConfigError


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HIDDENLAB_OFFLINE", "1")


def batches(loader):
    xs, ys = zip(*list(loader))
    return torch.cat(xs), torch.cat(ys)


def test_registries_and_cheap_import():
    assert sorted(DATASETS) == ["cifar10", "cifar100", "digits", "fashion-mnist", "imagenet", "mnist",
                               "synthetic"]
    assert sorted(LOADERS) == ["auto", "ffcv", "gpu", "torchvision"]
    code = ("import sys, hiddenlab.data, hiddenlab.data.cli; "
            "bad = [m for m in sys.modules if m.startswith(('ffcv', 'torchvision.datasets', 'sklearn'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("HIDDENLAB_DATA", str(tmp_path))
    assert default_root() == tmp_path
    monkeypatch.delenv("HIDDENLAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_root() == tmp_path / "cache" / "hiddenlab"


@pytest.mark.parametrize("n, val, train", [(50_000, 5_000, 45_000), (60_000, 10_000, 50_000)])
def test_split_sizes_disjoint_fixed(n, val, train):
    s = split_indices(n, val, None, "cifar10")
    assert len(s.train) == train and len(s.val) == val
    assert len(np.intersect1d(s.train, s.val)) == 0
    assert np.array_equal(np.union1d(s.train, s.val), np.arange(n))
    again = split_indices(n, val, None, "cifar10")
    assert np.array_equal(s.val, again.val)  # the same on every call (and machine: pure hash)
    # the held-out images are spread over the whole training part
    assert s.val.min() < n // 10 and s.val.max() > n - n // 10


def test_subset_is_nested_and_val_unchanged():
    full = split_indices(1000, 100, None, "x")
    small = split_indices(1000, 100, 50, "x")
    big = split_indices(1000, 100, 200, "x")
    assert len(small.train) == 50 and np.array_equal(small.val, full.val)
    assert set(small.train) <= set(big.train) <= set(full.train)
    assert len(split_indices(1000, 100, 10**6, "x").train) == 900


@pytest.mark.parametrize("val", [0, 1000, -1])
def test_bad_val_size(val):
    with pytest.raises(ConfigError, match="val_size"):
        split_indices(1000, val, None, "x")


@pytest.mark.parametrize("model, dataset, preset, pad, flip", [
    ("conv6", "cifar10", "crop-flip", 4, True),
    ("cifar-resnet18", "cifar100", "crop-flip", 4, True),
    ("slot-conv6", "cifar10", "flip", 0, True),
    ("vgg19", "cifar10", "flip", 0, True),
    ("lenet-300-100", "mnist", "none", 0, False),
    ("conv6", "digits", "none", 0, False),
    ("conv6", "synthetic", "none", 0, False),
])
def test_auto_augment_by_recipe(model, dataset, preset, pad, flip):
    shape = (3, 32, 32) if dataset.startswith("cifar") else (1, 28, 28)
    aug = resolve_augment("auto", model, dataset, shape)
    assert (aug.name, aug.pad, aug.flip) == (preset, pad, flip)


def test_imagenet_and_explicit_presets():
    aug = resolve_augment("auto", "resnet50", "imagenet", (3, 224, 224))
    assert aug.resized_crop and aug.flip and not aug.pad
    assert resolve_augment("crop-flip", "fc", "mnist", (1, 28, 28)).pad == 4
    assert resolve_augment("crop-flip", "fc", "digits", (1, 8, 8)).pad == 1
    assert not resolve_augment("none", "conv6", "cifar10", (3, 32, 32)).active


def test_synthetic_fixed_and_learnable():
    x, y = synthetic_images((3, 16, 16), 5, "train", 600)
    x2, y2 = synthetic_images((3, 16, 16), 5, "train", 100)
    assert x.dtype == np.uint8 and x.shape == (600, 3, 16, 16)
    assert np.array_equal(x[:100], x2) and np.array_equal(y[:100], y2)  # prefix-stable
    assert set(np.unique(y)) == set(range(5))
    # learnable: nearest class mean of 500 images classifies the other 100 almost perfectly
    xf = x.reshape(600, -1).astype(np.float64)
    means = np.stack([xf[:500][y[:500] == k].mean(0) for k in range(5)])
    pred = ((xf[500:, None] - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == y[500:]).mean() > 0.95
    # pinned values: a change to the generator changes every machine's data, on purpose only
    assert int(x[:10].astype(np.int64).sum()) == 873147
    assert y[:10].tolist() == [4, 2, 1, 1, 2, 3, 1, 1, 1, 2]


def test_synthetic_bundle_contract():
    cfg = make_cfg(dataset="synthetic", synthetic_shape=(1, 12, 10), synthetic_classes=4,
                   synthetic_size=100, batch_size=32, eval_batch_size=20)
    b = build_data(cfg, torch.device("cpu"))
    assert (b.loader, b.dataset, b.num_classes, b.input_shape) == ("gpu", "synthetic", 4, (1, 12, 10))
    assert b.sizes == {"train": 100, "val": 25, "test": 25}
    assert len(b.train) == 4 and len(b.val) == 2  # last partial batch kept
    sizes = [len(y) for _, y in b.train]
    assert sizes == [32, 32, 32, 4]
    x, y = next(iter(b.val))
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (20, 1, 12, 10)
    assert y.max() < 4


def test_digits_splits():
    b = build_data(make_cfg(dataset="digits", batch_size=500, eval_batch_size=500), "cpu")
    assert b.sizes == {"train": 1257, "val": 180, "test": 360}
    assert (b.num_classes, b.input_shape, b.augment) == (10, (1, 8, 8), "none")
    xs = [batches(getattr(b, p))[0] for p in ("train", "val", "test")]
    # no image is shared between the parts (digits has a few exact duplicates: compare counts)
    flat = torch.cat(xs).flatten(1)
    assert len(flat) == 1797
    from sklearn.datasets import load_digits
    assert len(torch.unique(flat, dim=0)) == len(np.unique(load_digits().images.reshape(1797, -1), axis=0))
    x = xs[0]
    assert abs(x.mean().item()) < 0.1 and abs(x.std().item() - 1) < 0.1  # normalisation constants


def test_set_epoch_determinism_and_global_rng():
    cfg = make_cfg(dataset="synthetic", synthetic_size=64, batch_size=16, augment="crop-flip", seed=3)
    b = build_data(cfg, "cpu")
    torch.manual_seed(123)
    state = torch.get_rng_state()
    b.train.set_epoch(5)
    x1, y1 = batches(b.train)
    b.train.set_epoch(5)
    x2, y2 = batches(b.train)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(torch.get_rng_state(), state)  # the trainer's RNG is left alone
    b.train.set_epoch(6)
    x3, y3 = batches(b.train)
    assert not torch.equal(y1, y3)
    other = build_data(make_cfg(dataset="synthetic", synthetic_size=64, batch_size=16,
                                augment="crop-flip", seed=4), "cpu")
    other.train.set_epoch(5)
    assert not torch.equal(batches(other.train)[1], y1)
    # without set_epoch each pass advances the epoch
    b.train.set_epoch(5)
    list(b.train)
    assert torch.equal(batches(b.train)[1], y3)
    # evaluation never shuffles or augments
    b.val.set_epoch(1)
    v1 = batches(b.val)
    b.val.set_epoch(2)
    assert all(torch.equal(a, c) for a, c in zip(v1, batches(b.val)))


def test_gpu_loader_refuses_imagenet(tmp_path):
    with pytest.raises(ConfigError, match="loader"):
        build_data(make_cfg(dataset="imagenet", loader="gpu", data_root=str(tmp_path)), "cpu")


def test_missing_cifar_names_the_path(tmp_path):
    with pytest.raises(DataError) as e:
        build_data(make_cfg(dataset="cifar10", data_root=str(tmp_path)), "cpu")
    assert str(tmp_path / "cifar-10-batches-py") in str(e.value)
    assert e.value.path == tmp_path / "cifar-10-batches-py"
    assert "data_batch_1" in str(e.value)


def test_corrupt_cifar_is_a_clear_error(tmp_path, monkeypatch):
    write_cifar(tmp_path, 20, 10)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="corrupted"):  # the real md5 check catches it
        build_data(make_cfg(dataset="cifar10", data_root=str(tmp_path), val_size=5), "cpu")


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no image folder") as e:
        build_data(make_cfg(dataset="imagenet", loader="torchvision", data_root=str(tmp_path)), "cpu")
    assert e.value.path == tmp_path / "imagenet" / "train"
    (tmp_path / "imagenet" / "train" / "n01").mkdir(parents=True)
    (tmp_path / "imagenet" / "train" / "n01" / "readme.txt").write_text("no images")
    with pytest.raises(DataError, match="no images in") as e:
        build_data(make_cfg(dataset="imagenet", loader="torchvision", data_root=str(tmp_path)), "cpu")
    assert str(tmp_path / "imagenet" / "train") in str(e.value)


def test_cifar_gpu_reads_torchvision_files(tmp_path, monkeypatch):
    undo = cifar_checksums_off()
    try:
        write_cifar(tmp_path, 60, 20)
        b = build_data(make_cfg(dataset="cifar10", data_root=str(tmp_path), val_size=10,
                                eval_batch_size=100), "cpu")
    finally:
        undo()
    assert b.sizes == {"train": 50, "val": 10, "test": 20} and b.augment == "crop-flip"
    import pickle
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes())
    x, y = batches(b.test)
    assert y.tolist() == raw["labels"]
    mean = torch.tensor((0.491, 0.482, 0.447)).view(1, 3, 1, 1)
    std = torch.tensor((0.247, 0.243, 0.262)).view(1, 3, 1, 1)
    pixels = torch.from_numpy(raw["data"].reshape(-1, 3, 32, 32)).float() / 255
    assert torch.allclose(x, (pixels - mean) / std, atol=1e-5)


def test_image_folder_helper(tmp_path):
    folder = write_image_folder(tmp_path / "f", per_class=2, classes=2)
    assert len(list(folder.rglob("*.png"))) == 4
