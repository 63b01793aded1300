"""Fakes for tests and benchmarks: small files in torchvision's on-disk formats (CIFAR python
pickles, MNIST idx), ImageFolder trees of generated images, and a config for the data package.

Everything is generated locally (no network), deterministic, and read back by the real
torchvision dataset classes.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

from hiddenlab.data.datasets import data_config as make_cfg  # noqa: F401 (re-export)
from hiddenlab.data.datasets import synthetic_images


def fake_images(n: int, shape: tuple[int, int, int], classes: int, part: str = "train"):
    """(uint8 [n, C, H, W], int64 [n]) learnable images (the synthetic generator, own key)."""
    return synthetic_images(shape, classes, f"fake-{part}", n)


def write_cifar(root: str | Path, n_train: int = 250, n_test: int = 50, classes: int = 10) -> Path:
    """CIFAR-10 (classes=10) or CIFAR-100 (classes=100) python-pickle batches under root, in
    torchvision's layout. Returns the data set folder."""
    root = Path(root)
    xs, ys = fake_images(n_train, (3, 32, 32), classes, "train")
    xt, yt = fake_images(n_test, (3, 32, 32), classes, "test")

    def dump(path: Path, x: np.ndarray, y: np.ndarray, label_key: str) -> None:
        # the real files are Python 2 pickles whose str keys load as str; Python 3 needs str here
        batch = {"batch_label": "fake", label_key: [int(v) for v in y],
                 "data": x.reshape(len(x), -1), "filenames": [f"{i}.png" for i in range(len(x))]}
        with open(path, "wb") as f:
            pickle.dump(batch, f, protocol=2)

    if classes == 10:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        for i, chunk in enumerate(np.array_split(np.arange(n_train), 5)):
            dump(folder / f"data_batch_{i + 1}", xs[chunk], ys[chunk], "labels")
        dump(folder / "test_batch", xt, yt, "labels")
        meta = {"label_names": [f"class{i}" for i in range(classes)]}
        (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        dump(folder / "train", xs, ys, "fine_labels")
        dump(folder / "test", xt, yt, "fine_labels")
        meta = {"fine_label_names": [f"class{i}" for i in range(classes)]}
        (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def write_mnist(root: str | Path, n_train: int = 250, n_test: int = 50) -> Path:
    """MNIST idx files (uncompressed) under root/MNIST/raw. Returns that folder."""
    folder = Path(root) / "MNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, part in (("train", n_train, "train"), ("t10k", n_test, "test")):
        x, y = fake_images(n, (1, 28, 28), 10, part)
        with open(folder / f"{prefix}-images-idx3-ubyte", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28))
            f.write(x.reshape(n, 28, 28).tobytes())
        with open(folder / f"{prefix}-labels-idx1-ubyte", "wb") as f:
            f.write(struct.pack(">II", 0x801, n))
            f.write(y.astype(np.uint8).tobytes())
    return folder


def write_image_folder(folder: str | Path, per_class: int = 4, classes: int = 3,
                       sizes=((48, 64), (64, 40), (56, 56)), ext: str = "png") -> Path:
    """An ImageFolder tree folder/class{k}/{i}.{ext} of RGB images of varying sizes."""
    from PIL import Image

    folder = Path(folder)
    for k in range(classes):
        (folder / f"class{k}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = sizes[(k + i) % len(sizes)]
            x, _ = fake_images(1, (3, h, w), classes, f"folder-{k}-{i}")
            Image.fromarray(x[0].transpose(1, 2, 0)).save(folder / f"class{k}" / f"{i}.{ext}")
    return folder


def write_imagenet(root: str | Path, per_class: int = 4, classes: int = 3) -> Path:
    """A tiny ImageNet-layout tree root/imagenet/{train,val}. Returns root/imagenet."""
    base = Path(root) / "imagenet"
    write_image_folder(base / "train", per_class, classes)
    write_image_folder(base / "val", max(1, per_class // 2), classes)
    return base


def cifar_checksums_off():
    """torchvision checks CIFAR files against the real archives' md5 sums; fake files cannot
    match. Returns an undo callable (tests: prefer monkeypatch.setattr on the same target)."""
    import torchvision.datasets.cifar as cifar

    original = cifar.check_integrity
    cifar.check_integrity = _exists

    def undo():
        cifar.check_integrity = original

    return undo


def _exists(fpath, md5=None) -> bool:
    import os

    return os.path.isfile(fpath)
