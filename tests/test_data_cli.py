"""`hiddenlab data prepare` / `hiddenlab data info`."""

from __future__ import annotations

import argparse

import pytest

from hiddenlab.data import cli
from hiddenlab.config import ConfigError


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HIDDENLAB_OFFLINE", "1")


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


def test_info_generated_sets(tmp_path, capsys):
    assert run(["data", "info", "digits", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train 1,257 / val 180 / test 360" in out
    assert "ffcv train: missing" in out and str(tmp_path) in out
    assert run(["data", "info", "synthetic", "--synthetic-size", "400", "--synthetic-shape",
                "1", "8", "8", "--data-root", str(tmp_path)]) == 0
    assert "train 400 / val 100 / test 100" in capsys.readouterr().out


def test_info_says_what_is_missing(tmp_path, capsys):
    assert run(["data", "info", "cifar10", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"missing: {tmp_path / 'cifar-10-batches-py' / 'data_batch_1'}" in out
    assert "--format torchvision" in out
    assert run(["data", "info", "imagenet", "--data-root", str(tmp_path)]) == 0
    assert f"missing: {tmp_path / 'imagenet' / 'train'}" in capsys.readouterr().out


def test_prepare_ffcv_then_info(tmp_path, capsys):
    pytest.importorskip("ffcv")
    argv = ["data", "prepare", "synthetic", "--synthetic-size", "40", "--workers", "1",
            "--data-root", str(tmp_path)]
    assert run(argv) == 0
    folder = tmp_path / "ffcv" / "synthetic-3x32x32-c10-n40"
    assert (folder / "train.beton").is_file() and (folder / "test.beton").is_file()
    assert run(["data", "info", "synthetic", "--synthetic-size", "40", "--data-root",
                str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"ffcv train: {folder / 'train.beton'}" in out and "'jpeg_fraction': 0.0" in out


def test_prepare_errors(tmp_path, capsys):
    assert run(["data", "prepare", "cifar10", "--format", "torchvision", "--data-root",
                str(tmp_path)]) == 2
    assert str(tmp_path / "cifar-10-batches-py") in capsys.readouterr().out
    assert run(["data", "prepare", "digits", "--jpeg-fraction", "2", "--data-root",
                str(tmp_path)]) == 2
    assert "jpeg_fraction" in capsys.readouterr().out
    assert run(["data", "prepare", "cifar10", "--data-root", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        run(["data", "prepare", "nosuchset"])
