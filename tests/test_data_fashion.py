"""Fashion-MNIST on the real files of Debian's `dataset-fashion-mnist`: they load, the three
loaders give the same batches, the torchvision-layout copy is read when Debian's is absent, and
missing or broken files are named.

Needs the Debian package (scripts/setup.sh installs it); without it these tests fail saying so.
"""

from __future__ import annotations

import argparse
import shutil
import zlib

import numpy as np
import pytest
import torch

from hiddenlab.data import DATASETS, DataError, build_data, cli
from hiddenlab.data.datasets import FashionMNISTSpec
from hiddenlab.data.testing import make_cfg
from hiddenlab.config import ConfigError

# numba's dispatcher finaliser trips over FFCV's per-epoch recompilation at garbage collection
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HIDDENLAB_OFFLINE", "1")


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> FashionMNISTSpec:
    spec = DATASETS["fashion-mnist"]
    files = spec.files(tmp_path_factory.mktemp("no-copy"))
    if not all(f.parent == spec.system_dir and f.is_file() for f in files):
        pytest.fail(f"Debian's {spec.debian_package} is not installed (no idx files in "
                    f"{spec.system_dir}): run scripts/setup.sh or `apt-get install "
                    f"{spec.debian_package}`", pytrace=False)
    return spec


def run(argv: list[str]) -> int:
    """What `hiddenlab.cli.main` does with the data sub-commands."""
    parser = argparse.ArgumentParser(prog="hiddenlab")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"hiddenlab: error: {e}")
        return 2


def batches(loader):
    xs, ys = zip(*list(loader))
    return torch.cat(xs), torch.cat(ys)


def test_real_files_load(spec, tmp_path):
    cfg = make_cfg(dataset="fashion-mnist", data_root=str(tmp_path))
    train, test = spec.arrays(cfg, tmp_path, "train"), spec.arrays(cfg, tmp_path, "test")
    assert train.images.shape == (60_000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (10_000, 1, 28, 28) and test.labels.dtype == torch.int64
    assert train.labels.bincount().tolist() == [6_000] * 10
    assert test.labels.bincount().tolist() == [1_000] * 10
    # file order (what the splits and the .beton files index): Zalando's first labels
    assert train.labels[:4].tolist() == [9, 0, 0, 3] and test.labels[:5].tolist() == [9, 2, 1, 1, 6]
    x = train.images.double() / 255
    assert abs(x.mean().item() - spec.mean[0]) < 5e-5 and abs(x.std().item() - spec.std[0]) < 5e-5
    assert spec.arrays(cfg, tmp_path, "train") is train  # parsed once per process
    b = build_data(make_cfg(dataset="fashion-mnist", model="lenet-300-100",
                            data_root=str(tmp_path)), "cpu")
    assert b.sizes == {"train": 50_000, "val": 10_000, "test": 10_000}
    assert (b.loader, b.augment, b.input_shape, b.num_classes) == ("gpu", "none", (1, 28, 28), 10)


def test_three_loaders_agree(spec, tmp_path, capsys):
    import ffcv  # noqa: F401  (a dependency: fail, not skip, when it is missing)

    root = str(tmp_path)
    assert run(["data", "prepare", "fashion-mnist", "--format", "torchvision", "--data-root",
                root]) == 0
    assert f"ready: {spec.system_dir}" in capsys.readouterr().out  # read in place, no download
    assert run(["data", "prepare", "fashion-mnist", "--workers", "2", "--data-root", root]) == 0
    assert run(["data", "info", "fashion-mnist", "--data-root", root]) == 0
    out = capsys.readouterr().out
    assert "train 50,000 / val 10,000 / test 10,000" in out
    assert f"ffcv test: {tmp_path / 'ffcv' / 'fashion-mnist' / 'test.beton'}" in out
    # val and test whole (10,000 each); train a subset, as a set (each loader shuffles its own way)
    cfg = dict(dataset="fashion-mnist", data_root=root, subset=500, batch_size=128,
               eval_batch_size=1000, num_workers=0)
    out = {}
    for loader in ("gpu", "torchvision", "ffcv"):
        b = build_data(make_cfg(loader=loader, **cfg), "cpu")
        assert b.loader == loader and b.augment == "none"
        b.train.set_epoch(0)
        out[loader] = [batches(b.val), batches(b.test), batches(b.train)]
    ref = out["gpu"]
    assert ref[0][0].shape == (10_000, 1, 28, 28) and ref[1][0].shape == (10_000, 1, 28, 28)
    for loader in ("torchvision", "ffcv"):
        for part in (0, 1):  # val, test: bit for bit
            assert torch.equal(out[loader][part][0], ref[part][0]), (loader, part)
            assert torch.equal(out[loader][part][1], ref[part][1]), (loader, part)
        x, y = out[loader][2]
        key = lambda x, y: sorted(zip(y.tolist(), x.flatten(1).sum(1).tolist()))  # noqa: E731
        assert len(y) == 500 and key(x, y) == key(*ref[2]), loader


def test_other_copies_and_errors_name_their_paths(spec, tmp_path, monkeypatch, capsys):
    other = FashionMNISTSpec(system_dir=tmp_path / "no-debian")
    root, cfg = tmp_path / "root", make_cfg(dataset="fashion-mnist")
    raw = root / "FashionMNIST" / "raw"
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as e:
        other.arrays(cfg, root, "train")
    assert e.value.path == raw and str(raw) in str(e.value) and "HIDDENLAB_OFFLINE" in str(e.value)
    monkeypatch.setitem(DATASETS._entries, "fashion-mnist", other)  # this one test only
    assert run(["data", "info", "fashion-mnist", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"missing: {raw / 'train-images-idx3-ubyte'}" in out and "install Debian's" in out

    # torchvision's layout under the data root: plain idx files or .gz, as it leaves them
    raw.mkdir(parents=True)
    for path in spec.files(root):
        if path.name.startswith("train-images"):
            (raw / path.stem).write_bytes(zlib.decompress(path.read_bytes(), 31))
        else:
            shutil.copy(path, raw / path.name)
    for part in ("train", "test"):
        mine, debian = other.arrays(cfg, root, part), spec.arrays(cfg, root, part)
        assert torch.equal(mine.images, debian.images) and torch.equal(mine.labels, debian.labels)
    assert other.files(root)[0] == raw / "train-images-idx3-ubyte"

    broken = raw / "train-images-idx3-ubyte"
    broken.write_bytes(broken.read_bytes()[:100_000])  # a new size: not served from the cache
    with pytest.raises(DataError, match="truncated") as e:
        other.arrays(cfg, root, "train")
    assert e.value.path == broken and str(broken) in str(e.value)
    broken.write_bytes(np.zeros(64, np.uint8).tobytes())
    with pytest.raises(DataError, match="not a uint8 idx file"):
        other.arrays(cfg, root, "train")
