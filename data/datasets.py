"""Data set descriptions: sizes, shapes, normalisation, where the files live, how to read them.

Every spec answers the same questions for the loaders: the full training part (before the
validation split) and the test part, either as one uint8 tensor (`arrays`, for the data sets that
fit in memory) or as a per-image torch Dataset (`torch_dataset`, for the torchvision loader) or as
an indexable of HWC uint8 arrays (`ffcv_source`, for writing .beton files).

Heavy imports (torchvision.datasets, sklearn, PIL) happen inside the methods: `hiddenlab.data`
is imported by the config validator and must stay cheap.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hiddenlab.data import seeding
from hiddenlab.config import DATASETS, ConfigError, TrialConfig

PARTS = ("train", "test")


class DataError(ConfigError):
    """A data file or folder is missing, empty or unreadable; `path` names it."""

    def __init__(self, message: str, path: str | os.PathLike | None = None, field: str = "dataset"):
        self.path = None if path is None else Path(path)
        super().__init__(field, message)


def default_root() -> Path:
    """$HIDDENLAB_DATA, else the per-user cache ($XDG_CACHE_HOME or ~/.cache)/hiddenlab."""
    env = os.environ.get("HIDDENLAB_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "hiddenlab"


def resolve_root(data_root: str | os.PathLike | None) -> Path:
    return Path(data_root).expanduser() if data_root else default_root()


def offline() -> bool:
    """HIDDENLAB_OFFLINE=1 forbids download attempts (tests, air-gapped clusters)."""
    return os.environ.get("HIDDENLAB_OFFLINE", "").lower() not in ("", "0", "false", "no")


@dataclass
class Arrays:
    """A whole part of a data set in memory: images uint8 [N, C, H, W], labels int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


class ArraySource:
    """(HWC uint8 array, int label) per index over in-memory Arrays: what the .beton writer reads."""

    def __init__(self, arrays: Arrays):
        self.images = arrays.images.permute(0, 2, 3, 1).numpy()
        self.labels = arrays.labels.numpy()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return np.ascontiguousarray(self.images[i]), int(self.labels[i])


class TensorImageDataset(torch.utils.data.Dataset):
    """Per-image access to in-memory Arrays for the torchvision loader (uint8 CHW tensors)."""

    def __init__(self, arrays: Arrays):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int):
        return self.arrays.images[i], int(self.arrays.labels[i])


class DatasetSpec:
    """Base class; see the module docstring."""

    name: str = ""
    help: str = ""
    default_loader: str = "gpu"
    in_memory: bool = True  # fits on the device as one uint8 tensor (the gpu loader)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def num_classes(self, cfg) -> int:
        raise NotImplementedError

    def input_shape(self, cfg) -> tuple[int, int, int]:
        raise NotImplementedError

    def stats(self, cfg) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.mean, self.std

    def default_val_size(self, cfg) -> int:
        raise NotImplementedError

    def arrays(self, cfg, root: Path, part: str) -> Arrays:
        raise NotImplementedError

    def size(self, cfg, root: Path, part: str) -> int:
        return len(self.arrays(cfg, root, part))

    def torch_dataset(self, cfg, root: Path, part: str) -> torch.utils.data.Dataset:
        return TensorImageDataset(self.arrays(cfg, root, part))

    def ffcv_source(self, cfg, root: Path, part: str) -> Sequence:
        return ArraySource(self.arrays(cfg, root, part))

    def ffcv_dir(self, cfg, root: Path) -> Path:
        """Where `data prepare --format ffcv` writes {train,test}.beton."""
        return root / "ffcv" / self.name

    def files(self, root: Path) -> list[Path]:
        """The raw files this data set reads (for `data info` and error messages)."""
        return []


# --- torchvision's small data sets -------------------------------------------------------------

class TorchvisionSpec(DatasetSpec):
    """MNIST / CIFAR in torchvision's on-disk layout under the data root; downloaded if missing."""

    def __init__(self, name, tv_class, folder, filenames, classes, shape, mean, std, val_size,
                 help):
        self.name, self.tv_class, self.folder, self.filenames = name, tv_class, folder, filenames
        self.classes, self.shape, self.mean, self.std = classes, shape, mean, std
        self.val_size, self.help = val_size, help

    def num_classes(self, cfg) -> int:
        return self.classes

    def input_shape(self, cfg) -> tuple[int, int, int]:
        return self.shape

    def default_val_size(self, cfg) -> int:
        return self.val_size

    def files(self, root: Path) -> list[Path]:
        return [root / self.folder / f for f in self.filenames]

    def open(self, root: Path, part: str):
        """The torchvision dataset object (no transform): PIL images, int labels."""
        return _open_torchvision(self, str(root), part == "train")

    def arrays(self, cfg, root: Path, part: str) -> Arrays:
        ds = self.open(root, part)
        images = torch.as_tensor(np.asarray(ds.data))
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
        labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
        return Arrays(images.contiguous(), labels)

    def size(self, cfg, root: Path, part: str) -> int:
        return len(self.open(root, part))

    def torch_dataset(self, cfg, root: Path, part: str):
        return self.open(root, part)


@functools.lru_cache(maxsize=8)
def _open_torchvision(spec: TorchvisionSpec, root: str, train: bool):
    import torchvision.datasets as tvd

    cls = getattr(tvd, spec.tv_class)
    where = Path(root) / spec.folder
    expected = ", ".join(spec.filenames)
    try:
        return cls(root, train=train, download=False)
    except RuntimeError as e:
        missing = e
    if offline():
        raise DataError(f"{spec.name}: not found or corrupted under {where} ({missing}); "
                        f"put torchvision's files there ({expected}) or unset HIDDENLAB_OFFLINE "
                        f"to download them", where)
    try:
        with _file_lock(Path(root) / f".{spec.name}.download.lock"):
            # concurrent trials on one machine: the first downloads, the others then find it
            return cls(root, train=train, download=True)
    except Exception as e:  # no network, proxy, disk full: all say the same to the user
        raise DataError(f"{spec.name}: no copy under {where} and the download failed "
                        f"({type(e).__name__}: {e}); put torchvision's files there ({expected}) "
                        f"or point --data-root / HIDDENLAB_DATA at a copy", where) from e


@contextlib.contextmanager
def _file_lock(path: Path):
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- ImageNet ----------------------------------------------------------------------------------

class ImageNetSpec(DatasetSpec):
    """ILSVRC-2012 from an ImageFolder layout: root/imagenet/train/<wnid>/*.JPEG and
    root/imagenet/val/<wnid>/*.JPEG (val is the test set; validation is held out of train)."""

    name = "imagenet"
    help = "ImageNet-1k, ImageFolder at DATA_ROOT/imagenet/{train,val}; 10,000 train images held out"
    default_loader = "ffcv"
    in_memory = False
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)
    resolution = 224  # train/eval crop; eval resizes the short side to 256 first
    eval_resize = 256

    def num_classes(self, cfg) -> int:
        return 1000

    def input_shape(self, cfg) -> tuple[int, int, int]:
        return (3, self.resolution, self.resolution)

    def default_val_size(self, cfg) -> int:
        return 10_000

    def folder(self, root: Path, part: str) -> Path:
        return root / "imagenet" / ("train" if part == "train" else "val")

    def files(self, root: Path) -> list[Path]:
        return [self.folder(root, p) for p in PARTS]

    def arrays(self, cfg, root, part):
        raise ConfigError("loader", "imagenet does not fit in memory as one tensor; use "
                          "--loader ffcv (default) or torchvision")

    def torch_dataset(self, cfg, root: Path, part: str):
        return open_image_folder(self.folder(root, part))

    def size(self, cfg, root: Path, part: str) -> int:
        return len(self.torch_dataset(cfg, root, part))

    def ffcv_source(self, cfg, root: Path, part: str):
        return _PILSource(self.torch_dataset(cfg, root, part))


@functools.lru_cache(maxsize=4)
def open_image_folder(path: Path):
    """torchvision ImageFolder (RGB PIL images), with errors that name the folder."""
    from torchvision.datasets import ImageFolder

    if not path.is_dir():
        raise DataError(f"no image folder at {path}: expected {path}/<class>/<image> files "
                        "(ImageNet: the train and val folders of ILSVRC-2012, val sorted into "
                        "class folders)", path)
    try:
        return ImageFolder(str(path))
    except (FileNotFoundError, RuntimeError) as e:
        raise DataError(f"no images in {path} ({e})", path) from e


class _PILSource:
    def __init__(self, folder):
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int):
        image, label = self.folder[i]
        return np.asarray(image.convert("RGB")), int(label)


# --- offline data sets -------------------------------------------------------------------------

class DigitsSpec(DatasetSpec):
    """scikit-learn's bundled 8x8 digits (1,797 images, 16 grey levels scaled to 0..255).

    There is no official test set: a fixed permutation puts 360 images (20%) in test, the other
    1,437 form the training part, of which 180 are held out for validation by default:
    1,257 / 180 / 360.
    """

    name = "digits"
    help = "scikit-learn 8x8 digits (offline): 1,257 train / 180 val / 360 test, 1x8x8, 10 classes"
    mean = (0.3053,)
    std = (0.3759,)
    test_size = 360

    def num_classes(self, cfg) -> int:
        return 10

    def input_shape(self, cfg) -> tuple[int, int, int]:
        return (1, 8, 8)

    def default_val_size(self, cfg) -> int:
        return 180

    def arrays(self, cfg, root, part) -> Arrays:
        images, labels = _digits()
        order = seeding.permutation(len(labels), "digits-test-split")
        idx = np.sort(order[self.test_size:] if part == "train" else order[:self.test_size])
        return Arrays(images[idx], labels[idx])


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    # 0..16 grey levels -> 0..255, exactly (integer rounding), so all loaders see one uint8 image
    images = np.floor(d.images * 255.0 / 16.0 + 0.5).astype(np.uint8)[:, None]
    return torch.from_numpy(images), torch.from_numpy(d.target.astype(np.int64))


class SyntheticSpec(DatasetSpec):
    """Generated, learnable images: each class has a random blocky prototype (a 4x4 grid of
    random grey levels per channel, upsampled) and each image is its class prototype plus
    pixel noise (sum of three uniforms, std ~32 grey levels).

    Drawn from a fixed hash (seeding.py), independent of the trial seed and of library versions,
    so the data are identical on every machine. Training part: synthetic_size + synthetic_size/4
    images (train + held-out val), test part: synthetic_size/4.
    """

    name = "synthetic"
    help = "generated prototypes + noise (offline, learnable): shape/classes/size from config"
    grid = 4
    noise = 32  # half-width of each of the three uniform noise terms, grey levels

    def num_classes(self, cfg) -> int:
        return int(cfg.synthetic_classes)

    def input_shape(self, cfg) -> tuple[int, int, int]:
        shape = tuple(int(s) for s in cfg.synthetic_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ConfigError("synthetic_shape", f"{shape} is not C H W with positive sizes")
        return shape  # type: ignore[return-value]

    def stats(self, cfg):
        c = self.input_shape(cfg)[0]
        # uniform prototypes (std 73.9) plus noise (std ~32): 0.5 / 0.31 of full scale
        return (0.5,) * c, (0.31,) * c

    def default_val_size(self, cfg) -> int:
        return max(1, int(cfg.synthetic_size) // 4)

    def ffcv_dir(self, cfg, root: Path) -> Path:
        c, h, w = self.input_shape(cfg)
        return root / "ffcv" / f"synthetic-{c}x{h}x{w}-c{cfg.synthetic_classes}-n{cfg.synthetic_size}"

    def arrays(self, cfg, root, part) -> Arrays:
        if cfg.synthetic_classes < 2:
            raise ConfigError("synthetic_classes", f"{cfg.synthetic_classes} must be >= 2")
        if cfg.synthetic_size < 4:
            raise ConfigError("synthetic_size", f"{cfg.synthetic_size} must be >= 4")
        n = int(cfg.synthetic_size)
        count = n + n // 4 if part == "train" else n // 4
        images, labels = synthetic_images(self.input_shape(cfg), self.num_classes(cfg), part,
                                          count, self.grid, self.noise)
        return Arrays(torch.from_numpy(images), torch.from_numpy(labels))


def synthetic_images(shape, classes, part, count, grid=4, noise=32, chunk=4096):
    """(uint8 [count, C, H, W], int64 [count]); image i of a part never depends on `count`."""
    c, h, w = shape
    key = ("synthetic", c, h, w, classes)
    gh, gw = min(grid, h), min(grid, w)
    protos = seeding.uniform_ints(key + ("prototypes",), 0, classes * c * gh * gw, 256)
    protos = protos.reshape(classes, c, gh, gw)
    # upsample by repetition (integer, exact) and crop to H x W
    protos = protos.repeat(math.ceil(h / gh), axis=2).repeat(math.ceil(w / gw), axis=3)
    protos = protos[:, :, :h, :w]
    labels = seeding.uniform_ints(key + (part, "labels"), 0, count, classes)
    images = np.empty((count, c, h, w), dtype=np.uint8)
    pix = c * h * w
    for start in range(0, count, chunk):
        stop = min(count, start + chunk)
        # one 64-bit hash per pixel gives the three noise terms (three 21-bit fields)
        bits = seeding.stream(key + (part, "noise"), pix * start, pix * (stop - start))
        u = sum(((bits >> np.uint64(21 * j)) & np.uint64(0x1FFFFF)) % np.uint64(2 * noise + 1)
                for j in range(3)).astype(np.int64).reshape(stop - start, c, h, w)
        x = protos[labels[start:stop]] + u - 3 * noise
        images[start:stop] = np.clip(x, 0, 255)
    return images, labels


# --- Fashion-MNIST -----------------------------------------------------------------------------

_FASHION_FILES = {  # part -> (images, labels), the names Zalando and torchvision use
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class FashionMNISTSpec(DatasetSpec):
    """Zalando's Fashion-MNIST: 70,000 grey 28x28 clothing images, 10 classes, 6,000 per class
    in train and 1,000 in test; default validation 10,000 held out of train (as MNIST).

    Read, in this order, from Debian's `dataset-fashion-mnist` (gzipped idx files in
    `system_dir`), from a copy under the data root in torchvision's layout
    (DATA_ROOT/FashionMNIST/raw, plain or .gz idx files), else downloaded there by torchvision.
    The idx files are parsed with numpy and kept per process: every trial reads the set.
    """

    name = "fashion-mnist"
    help = ("Fashion-MNIST (Debian's dataset-fashion-mnist, else torchvision): 50,000 train / "
            "10,000 val / 10,000 test, 1x28x28, 10 classes")
    # of the 60,000 training images (pixels / 255): 0.28604, 0.35302
    mean = (0.2860,)
    std = (0.3530,)
    folder = "FashionMNIST/raw"
    debian_package = "dataset-fashion-mnist"

    def __init__(self, system_dir: str | os.PathLike = "/usr/share/datasets/fashion-mnist"):
        self.system_dir = Path(system_dir)

    def num_classes(self, cfg) -> int:
        return 10

    def input_shape(self, cfg) -> tuple[int, int, int]:
        return (1, 28, 28)

    def default_val_size(self, cfg) -> int:
        return 10_000

    def files(self, root: Path) -> list[Path]:
        """The four idx files of the first complete copy; torchvision's names under the data
        root (missing) when there is none."""
        found = self._find(root)
        if found is not None:
            return found
        return [root / self.folder / f for pair in _FASHION_FILES.values() for f in pair]

    def _find(self, root: Path) -> list[Path] | None:
        for folder in (self.system_dir, root / self.folder):
            paths = [_plain_or_gz(folder / f) for pair in _FASHION_FILES.values() for f in pair]
            if all(p is not None for p in paths):
                return paths
        return None

    def arrays(self, cfg, root: Path, part: str) -> Arrays:
        files = self._find(root) or self._download(root)
        images, labels = files[:2] if part == "train" else files[2:]
        return _read_idx_set(images, labels, _file_key(images), _file_key(labels))

    def _download(self, root: Path) -> list[Path]:
        where = root / self.folder
        names = ", ".join(f for pair in _FASHION_FILES.values() for f in pair)
        get = (f"install Debian's {self.debian_package} (apt-get install {self.debian_package}, "
               f"files in {self.system_dir}) or put torchvision's files ({names}, plain or .gz) "
               f"in {where}")
        if offline():
            raise DataError(f"{self.name}: no copy in {self.system_dir} nor under {where}; "
                            f"{get}, or unset HIDDENLAB_OFFLINE to download them", where)
        import torchvision.datasets as tvd

        try:
            with _file_lock(root / f".{self.name}.download.lock"):
                tvd.FashionMNIST(str(root), train=True, download=True)  # fetches all four
        except Exception as e:  # no network, proxy, disk full: all say the same to the user
            raise DataError(f"{self.name}: no copy in {self.system_dir} nor under {where}, and "
                            f"the download failed ({type(e).__name__}: {e}); {get}, or point "
                            "--data-root / HIDDENLAB_DATA at a copy", where) from e
        found = self._find(root)
        if found is None:
            raise DataError(f"{self.name}: torchvision downloaded into {where} but the idx files "
                            f"are not there; {get}", where)
        return found


def _plain_or_gz(path: Path) -> Path | None:
    gz = path.with_name(path.name + ".gz")
    return path if path.is_file() else gz if gz.is_file() else None


def _file_key(path: Path) -> tuple[int, int]:
    """(size, mtime): a file replaced in place is read again, not served from the cache."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=4)
def _read_idx_set(images: Path, labels: Path, *_file_keys) -> Arrays:
    x = read_idx(images, ndim=3)
    y = read_idx(labels, ndim=1)
    if x.shape[1:] != (28, 28) or len(x) != len(y):
        raise DataError(f"{images} and {labels} hold {x.shape} images and {len(y)} labels, "
                        "expected N x 28 x 28 images and N labels", images)
    if y.max(initial=0) >= 10:
        raise DataError(f"{labels}: label {int(y.max())} outside 0..9", labels)
    # the shared tensors of this cache: the loaders index or copy them, never write into them
    return Arrays(torch.from_numpy(x[:, None]), torch.from_numpy(y.astype(np.int64)))


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """A uint8 idx file (LeCun's MNIST format, gzipped when the name ends in .gz) as an array."""
    import zlib

    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = zlib.decompress(data, wbits=zlib.MAX_WBITS | 16)  # faster than gzip.open
    except (OSError, zlib.error) as e:
        raise DataError(f"cannot read {path} ({type(e).__name__}: {e})", path) from e
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes((0, 0, 0x08, ndim)):
        raise DataError(f"{path} is not a uint8 idx file with {ndim} dimension(s) (header "
                        f"{data[:4].hex()}); replace it with the original", path)
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4))
    if len(data) != header + math.prod(shape):
        raise DataError(f"{path}: {len(data) - header} bytes of data, the header says {shape}; "
                        "the file is truncated or corrupt, replace it with the original", path)
    # a writable copy (bytearray): torch.from_numpy warns on read-only buffers
    return np.frombuffer(bytearray(data), np.uint8, offset=header).reshape(shape)


_CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                  "test_batch", "batches.meta")
_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")


def _specs() -> dict[str, DatasetSpec]:
    specs: list[DatasetSpec] = [
        TorchvisionSpec("mnist", "MNIST", "MNIST/raw", _MNIST_FILES, 10, (1, 28, 28),
                        (0.1307,), (0.3081,), 10_000,
                        "MNIST (torchvision): 50,000 train / 10,000 val / 10,000 test"),
        TorchvisionSpec("cifar10", "CIFAR10", "cifar-10-batches-py", _CIFAR10_FILES, 10,
                        (3, 32, 32), (0.491, 0.482, 0.447), (0.247, 0.243, 0.262), 5_000,
                        "CIFAR-10 (torchvision): 45,000 train / 5,000 val / 10,000 test"),
        TorchvisionSpec("cifar100", "CIFAR100", "cifar-100-python", ("train", "test", "meta"), 100,
                        (3, 32, 32), (0.507, 0.487, 0.441), (0.267, 0.256, 0.276), 5_000,
                        "CIFAR-100 (torchvision): 45,000 train / 5,000 val / 10,000 test"),
        FashionMNISTSpec(),
        ImageNetSpec(),
        DigitsSpec(),
        SyntheticSpec(),
    ]
    return {s.name: s for s in specs}


for _spec in _specs().values():
    DATASETS.add(_spec.name, _spec)


def get_dataset(name: str) -> DatasetSpec:
    return DATASETS.get(name)


def data_config(**changes) -> TrialConfig:
    """A TrialConfig with `changes` (the data CLI and tests need one without a whole trial)."""
    return TrialConfig(**changes)
