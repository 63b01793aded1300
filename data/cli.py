"""`hiddenlab data prepare DATASET --format ffcv|torchvision` and `hiddenlab data info DATASET`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hiddenlab.config import ConfigError
from hiddenlab.data.datasets import DATASETS, DataError, DatasetSpec, FashionMNISTSpec, \
    ImageNetSpec, TorchvisionSpec, data_config, resolve_root

FORMATS = ("ffcv", "torchvision")


def register(subparsers, argv: list[str] | None = None) -> None:
    data = subparsers.add_parser("data", help="prepare and inspect data sets",
                                 description="Prepare and inspect data sets.")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    prep = sub.add_parser(
        "prepare", help="download / convert a data set",
        description="`--format torchvision` downloads MNIST/CIFAR/Fashion-MNIST into the data "
                    "root (Fashion-MNIST: unless Debian's dataset-fashion-mnist is installed; "
                    "checks an ImageNet folder); `--format ffcv` writes DATA_ROOT/ffcv/DATASET/"
                    "{train,test}.beton for the ffcv loader.")
    _common(prep)
    prep.add_argument("--format", choices=FORMATS, default="ffcv", help="what to write (default ffcv)")
    prep.add_argument("--max-side", type=int, default=None,
                      help="ffcv: resize so the longest side is at most this (default: imagenet "
                           "500, others unchanged)")
    prep.add_argument("--jpeg-fraction", type=float, default=None,
                      help="ffcv: fraction of images stored as JPEG (default: imagenet 0.5, "
                           "others 0 = raw pixels)")
    prep.add_argument("--quality", type=int, default=None, help="ffcv: JPEG quality (default 90)")
    prep.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                      help="writer processes (default: min(8, CPUs))")
    prep.add_argument("--force", action="store_true", help="rewrite files that already exist")
    prep.set_defaults(func=cmd_prepare)

    info = sub.add_parser("info", help="sizes of a data set and where its files are")
    _common(info)
    info.set_defaults(func=cmd_info)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", choices=sorted(DATASETS), metavar="DATASET",
                   help="{" + ",".join(sorted(DATASETS)) + "}")
    p.add_argument("--data-root", default=None,
                   help="data directory (default: $HIDDENLAB_DATA, then ~/.cache/hiddenlab)")
    p.add_argument("--synthetic-shape", type=int, nargs=3, default=None, metavar=("C", "H", "W"))
    p.add_argument("--synthetic-classes", type=int, default=None)
    p.add_argument("--synthetic-size", type=int, default=None)


def _cfg(args):
    changes = {"dataset": args.dataset}
    if args.synthetic_shape is not None:
        changes["synthetic_shape"] = tuple(args.synthetic_shape)
    for name in ("synthetic_classes", "synthetic_size"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    return data_config(**changes)


def cmd_prepare(args) -> int:
    from hiddenlab.data import ffcv_files
    from hiddenlab.study.preflight import check_source, check_writable

    spec, cfg, root = DATASETS[args.dataset], _cfg(args), resolve_root(args.data_root)
    _check_workers(args.workers)
    if args.format == "torchvision":
        _only_ffcv(args)
        check_writable(root, "data_root")
        note = check_source(spec, root)   # present, or a download that can work
        if note:
            print(note)
        for part in ("train", "test"):
            n = spec.size(cfg, root, part)  # downloads what is missing
            print(f"{spec.name} {part}: {n:,} images")
        folders = sorted({str(f.parent) for f in spec.files(root)})
        print(f"ready: {', '.join(folders) or root}")
        return 0
    options = _beton_options(args, spec, cfg)
    folder = spec.ffcv_dir(cfg, root)
    check_writable(folder, "data_root")
    if args.force or not all(ffcv_files.beton_path(folder, p).is_file() for p in ffcv_files.PARTS):
        note = check_source(spec, root)   # the images to write are there, or downloadable
        if note:
            print(note)
    paths = ffcv_files.prepare(spec, cfg, root, options, num_workers=args.workers, force=args.force)
    for part, path in paths.items():
        print(f"{part}: {path} ({path.stat().st_size / 2**20:,.1f} MiB)")
    return 0


def _check_workers(workers: int) -> None:
    if not 1 <= workers <= 256:
        raise ConfigError("workers", f"{workers} is outside [1, 256]: writer processes")


def _only_ffcv(args) -> None:
    for name in ("max_side", "jpeg_fraction", "quality"):
        if getattr(args, name) is not None:
            raise ConfigError(name, f"only --format ffcv takes --{name.replace('_', '-')}")


def _beton_options(args, spec: DatasetSpec, cfg):
    """The .beton options: the data set's defaults, the given ones checked. RGB images only can
    be resized or JPEG-compressed (the others are stored raw)."""
    from hiddenlab.data import ffcv_files

    if args.max_side is not None and not 1 <= args.max_side <= 65_535:
        raise ConfigError("max_side", f"{args.max_side} is outside [1, 65535]: the longest side "
                          "of a stored image, in pixels")
    if args.jpeg_fraction is not None and not 0 <= args.jpeg_fraction <= 1:  # NaN too
        raise ConfigError("jpeg_fraction", f"{args.jpeg_fraction} is outside [0, 1]: the "
                          "fraction of images stored as JPEG")
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise ConfigError("quality", f"{args.quality} is outside [1, 100]: JPEG quality")
    channels = spec.input_shape(cfg)[0]
    if channels != 3:
        for name in ("max_side", "jpeg_fraction", "quality"):
            value = getattr(args, name)
            if value is not None and (name != "jpeg_fraction" or value > 0):
                raise ConfigError(name, f"{spec.name} has {channels}-channel images, stored raw; "
                                  "only RGB images are resized or stored as JPEG")
    base = ffcv_files.IMAGENET_OPTIONS if spec.name == "imagenet" else ffcv_files.BetonOptions()
    options = ffcv_files.BetonOptions(
        max_side=args.max_side if args.max_side is not None else base.max_side,
        jpeg_fraction=args.jpeg_fraction if args.jpeg_fraction is not None else base.jpeg_fraction,
        quality=args.quality if args.quality is not None else base.quality)
    if args.quality is not None and options.jpeg_fraction == 0:
        raise ConfigError("quality", "only JPEG images have a quality; --jpeg-fraction is 0")
    return options


def cmd_info(args) -> int:
    spec, cfg, root = DATASETS[args.dataset], _cfg(args), resolve_root(args.data_root)
    print(f"{spec.name}: {spec.help}")
    c, h, w = spec.input_shape(cfg)
    print(f"  images {c}x{h}x{w}, {spec.num_classes(cfg)} classes, default loader "
          f"{spec.default_loader}, default validation {spec.default_val_size(cfg):,} held out "
          "of train")
    print(f"  data root {root}")
    for line in _source_lines(spec, cfg, root):
        print("  " + line)
    for line in _ffcv_lines(spec, cfg, root):
        print("  " + line)
    return 0


def _source_lines(spec: DatasetSpec, cfg, root: Path) -> list[str]:
    if isinstance(spec, (TorchvisionSpec, ImageNetSpec, FashionMNISTSpec)):
        missing = [f for f in spec.files(root) if not f.exists()]
        if missing:
            return [f"missing: {f}" for f in missing] + [_how_to_get(spec)]
    lines = []
    try:
        sizes = {part: spec.size(cfg, root, part) for part in ("train", "test")}
    except DataError as e:
        return [f"unreadable: {e}"]
    val = spec.default_val_size(cfg)
    where = ", ".join(str(f) for f in spec.files(root)) or "generated in memory (no files)"
    lines.append(f"source: {where}")
    lines.append(f"sizes: train {sizes['train'] - val:,} / val {val:,} / test {sizes['test']:,}")
    return lines


def _how_to_get(spec: DatasetSpec) -> str:
    download = f"`hiddenlab data prepare {spec.name} --format torchvision` downloads them"
    if isinstance(spec, FashionMNISTSpec):
        return (f"install Debian's {spec.debian_package} (files in {spec.system_dir}), or "
                + download)
    if isinstance(spec, TorchvisionSpec):
        return download
    return "copy ILSVRC-2012 there as ImageFolder trees (val sorted into class folders)"


def _ffcv_lines(spec: DatasetSpec, cfg, root: Path) -> list[str]:
    from hiddenlab.data import ffcv_files

    folder = spec.ffcv_dir(cfg, root)
    lines = []
    for part in ffcv_files.PARTS:
        path = ffcv_files.beton_path(folder, part)
        if path.exists():
            lines.append(f"ffcv {part}: {path} ({path.stat().st_size / 2**20:,.1f} MiB)")
        else:
            lines.append(f"ffcv {part}: missing ({path}); `hiddenlab data prepare {spec.name} "
                         "--format ffcv` writes it")
    meta = ffcv_files.read_meta(folder)
    if meta:
        lines.append(f"ffcv written {meta.get('written')}, options {meta.get('options')}")
    return lines
