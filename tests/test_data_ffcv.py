"""Real .beton files written from small generated images and read back; the three loaders agree.

FFCV imports and compiles slowly, so the files are shared per module and loaders are few.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("ffcv")
# numba's dispatcher finaliser trips over FFCV's per-epoch recompilation at garbage collection
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

from ffcv.fields.decoders import IntDecoder, NDArrayDecoder, SimpleRGBImageDecoder  # noqa: E402
from ffcv.loader import Loader, OrderOption  # noqa: E402

from hiddenlab.data import DATASETS, DataError, build_data  # noqa: E402
from hiddenlab.data.datasets import ArraySource, Arrays  # noqa: E402
from hiddenlab.data.ffcv_files import BetonOptions, check_beton, prepare, write_beton  # noqa: E402
from hiddenlab.data.testing import (cifar_checksums_off, fake_images, make_cfg,  # noqa: E402
                                    write_cifar, write_imagenet, write_mnist)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HIDDENLAB_OFFLINE", "1")


def source(x: np.ndarray, y: np.ndarray) -> ArraySource:
    return ArraySource(Arrays(torch.from_numpy(x), torch.from_numpy(y)))


def read_all(path, rgb=True):
    """Every (HWC image, label) of a .beton in file order, through FFCV's own decoders."""
    loader = Loader(str(path), batch_size=1000, num_workers=1, order=OrderOption.SEQUENTIAL,
                    drop_last=False,
                    pipelines={"image": [SimpleRGBImageDecoder() if rgb else NDArrayDecoder()],
                               "label": [IntDecoder()]})
    xs, ys = zip(*[(x.copy(), y.copy()) for x, y in loader])
    return np.concatenate(xs), np.concatenate(ys).reshape(-1)


def batches(loader):
    xs, ys = zip(*list(loader))
    return torch.cat(xs), torch.cat(ys)


@pytest.fixture(scope="module")
def raw_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("beton")
    rgb = fake_images(37, (3, 16, 16), 7)
    gray = fake_images(23, (1, 28, 28), 10)
    write_beton(source(*rgb), d / "rgb.beton")
    write_beton(source(*gray), d / "gray.beton")
    return d, rgb, gray


def test_raw_rgb_bit_identical(raw_files):
    d, (x, y), _ = raw_files
    xi, yi = read_all(d / "rgb.beton")
    assert np.array_equal(yi, y)
    assert np.array_equal(xi, x.transpose(0, 2, 3, 1))
    assert check_beton(d / "rgb.beton").num_samples == 37


def test_raw_gray_bit_identical(raw_files):
    d, _, (x, y) = raw_files
    xi, yi = read_all(d / "gray.beton", rgb=False)
    assert np.array_equal(yi, y) and np.array_equal(xi, x.transpose(0, 2, 3, 1))


def test_jpeg_within_tolerance(tmp_path):
    # smooth images (what JPEG is for): random low-frequency sinusoids per channel
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 32
    f = rng.uniform(0.3, 1.5, (20, 3, 2, 1, 1))
    ph = rng.uniform(0, 2 * np.pi, (20, 3, 1, 1))
    x = 128 + 90 * np.sin(2 * np.pi * (f[:, :, 0] * yy + f[:, :, 1] * xx) + ph)
    x = np.round(x).astype(np.uint8)
    y = np.arange(20) % 3
    write_beton(source(x, y), tmp_path / "jpg.beton", BetonOptions(jpeg_fraction=1.0, quality=90))
    reader = check_beton(tmp_path / "jpg.beton")
    assert (reader.metadata["f0"]["mode"] == 0).all()  # every image stored as JPEG
    xi, yi = read_all(tmp_path / "jpg.beton")
    assert np.array_equal(yi, y)
    err = np.abs(xi.astype(int) - x.transpose(0, 2, 3, 1).astype(int))
    psnr = 10 * np.log10(255**2 / (err.astype(float) ** 2).mean())
    assert err.mean() < 5 and psnr > 30  # PIL at quality 90 on these images: mean ~3, 36 dB
    assert (tmp_path / "jpg.beton").stat().st_size > 0


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    write_imagenet(root, per_class=6, classes=2)
    prepare(DATASETS["imagenet"], make_cfg(dataset="imagenet", data_root=str(root)), root,
            BetonOptions(max_side=32, jpeg_fraction=0.5, quality=80))
    return root


def test_imagenet_options_resize_and_mix(imagenet_root):
    folder = imagenet_root / "ffcv" / "imagenet"
    meta = check_beton(folder / "train.beton").metadata["f0"]
    assert len(meta) == 12 and max(meta["height"].max(), meta["width"].max()) == 32
    assert set(meta["mode"]) == {0, 1}  # JPEG and raw both present (p = 1 - 2^-11)
    assert check_beton(folder / "test.beton").num_samples == 6
    loader = Loader(str(folder / "train.beton"), batch_size=100, num_workers=1, drop_last=False,
                    order=OrderOption.SEQUENTIAL, pipelines={"image": None, "label": [IntDecoder()]})
    labels = np.concatenate([y for (y,) in loader]).reshape(-1)
    assert labels.tolist() == [0] * 6 + [1] * 6  # ImageFolder order, class index labels


def test_truncated_and_corrupt_files(raw_files, tmp_path):
    good = (raw_files[0] / "rgb.beton").read_bytes()
    cases = {
        "half.beton": good[: len(good) // 2],
        "table.beton": good[:-5],  # allocation table cut off
        "tiny.beton": good[:10],
        "garbage.beton": b"\x07" * len(good),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError) as e:
            check_beton(tmp_path / name)
        assert str(tmp_path / name) in str(e.value), name
    with pytest.raises(DataError, match="no FFCV file"):
        check_beton(tmp_path / "missing.beton")


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    undo = cifar_checksums_off()
    write_cifar(root, 120, 30)
    write_mnist(root, 100, 30)
    yield root
    undo()


@pytest.mark.parametrize("dataset", ["cifar10", "mnist"])
def test_three_loaders_agree(cifar_root, dataset):
    # num_workers 0: torchvision in-process (workers: test_torchvision_workers_...), ffcv 1 thread
    cfg = dict(dataset=dataset, data_root=str(cifar_root), val_size=20, batch_size=32,
               eval_batch_size=16, num_workers=0, augment="none")
    with pytest.raises(DataError, match="data prepare"):  # no .beton yet: says how to make one
        build_data(make_cfg(loader="ffcv", **cfg), "cpu")
    prepare(DATASETS[dataset], make_cfg(**cfg), cifar_root)
    out = {}
    for loader in ("gpu", "torchvision", "ffcv"):
        b = build_data(make_cfg(loader=loader, **cfg), torch.device("cpu"))
        n_train = (120 if dataset == "cifar10" else 100) - 20
        assert b.loader == loader and len(b.train) == -(-n_train // 32) and len(b.test) == 2
        b.train.set_epoch(0)
        out[loader] = [batches(b.val), batches(b.test), batches(b.train)]
    ref = out["gpu"]
    shape = (3, 32, 32) if dataset == "cifar10" else (1, 28, 28)
    assert ref[0][0].shape == (20, *shape) and ref[1][0].shape == (30, *shape)
    for loader in ("torchvision", "ffcv"):
        for part in (0, 1):  # val, test: identical batches, bit for bit
            assert torch.equal(out[loader][part][0], ref[part][0]), (loader, part)
            assert torch.equal(out[loader][part][1], ref[part][1]), (loader, part)
        # train (shuffled differently per loader): the same images with the same labels
        x, y = out[loader][2]
        key = lambda x, y: sorted(zip(y.tolist(), x.flatten(1).sum(1).tolist()))  # noqa: E731
        assert key(x, y) == key(*ref[2])


def test_ffcv_train_augmented_and_deterministic(cifar_root):
    cfg = make_cfg(dataset="cifar10", data_root=str(cifar_root), val_size=20, batch_size=50,
                   num_workers=1, loader="ffcv")
    prepare(DATASETS["cifar10"], cfg, cifar_root)
    b = build_data(cfg, "cpu")
    assert b.augment == "crop-flip" and [len(y) for _, y in b.train] == [50, 50]
    b.train.set_epoch(7)
    first = batches(b.train)
    b.train.set_epoch(8)
    other = batches(b.train)
    b.train.set_epoch(7)
    again = batches(b.train)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], other[1])
    # augmented: padded crops bring in zeros (normalised: -mean/std)
    zero = -torch.tensor((0.491, 0.482, 0.447)) / torch.tensor((0.247, 0.243, 0.262))
    at_zero = torch.isclose(first[0], zero.view(1, 3, 1, 1), atol=1e-5).all(1)
    assert at_zero.any()


def test_imagenet_loaders(imagenet_root):
    cfg = dict(dataset="imagenet", data_root=str(imagenet_root), val_size=2, batch_size=5,
               eval_batch_size=3, num_workers=0)  # ffcv: 1 thread; torchvision: in-process
    for loader in ("ffcv", "torchvision"):
        b = build_data(make_cfg(loader=loader, **cfg), "cpu")
        assert b.input_shape == (3, 224, 224) and b.augment == "crop-flip"
        assert b.sizes == {"train": 10, "val": 2, "test": 6}
        b.train.set_epoch(1)
        one = batches(b.train)
        b.train.set_epoch(2)
        two = batches(b.train)
        b.train.set_epoch(1)
        assert torch.equal(batches(b.train)[0], one[0]), loader  # seeded resized crops
        assert not torch.equal(one[0], two[0])
        x, y = batches(b.val)
        assert x.shape == (2, 3, 224, 224) and y.dtype == torch.int64
    assert DATASETS["imagenet"].default_loader == "ffcv"  # what `auto` picks


def test_torchvision_workers_do_not_change_batches(cifar_root):
    cfg = dict(dataset="cifar10", data_root=str(cifar_root), val_size=20, batch_size=64)
    runs = []
    for workers in (0, 2):
        b = build_data(make_cfg(loader="torchvision", num_workers=workers, **cfg), "cpu")
        b.train.set_epoch(3)
        runs.append(batches(b.train))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_generated_sets_prepare_themselves_and_corrupt_files_are_named(tmp_path):
    cfg = dict(dataset="synthetic", synthetic_size=40, data_root=str(tmp_path), num_workers=1)
    b = build_data(make_cfg(loader="ffcv", **cfg), "cpu")
    path = b.train.path
    assert path.parent == tmp_path / "ffcv" / "synthetic-3x32x32-c10-n40" and path.is_file()
    g = build_data(make_cfg(loader="gpu", **cfg), "cpu")
    assert torch.equal(batches(b.test)[0], batches(g.test)[0])
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="not a valid FFCV file") as e:
        build_data(make_cfg(loader="ffcv", **cfg), "cpu")
    assert str(path) in str(e.value)
