"""Training-loader throughput: gpu vs torchvision vs ffcv on the same CIFAR-format data.

Writes generated images in CIFAR-10's on-disk format (python pickles; torchvision's md5 check is
switched off for them) and the matching .beton, then times full training epochs of each loader
with the same augmentation (random crop 32 pad 4 + flip, the edge-popup recipe) and batch size.
The first epoch of each loader is a warm-up (FFCV compiles its pipeline, workers start) and is
reported separately; images/s is over the remaining epochs.

    python benchmarks/loaders.py                       # 50,000 images, CPU
    python benchmarks/loaders.py --images 10000 --device cuda --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from hiddenlab.data import DATASETS, build_data
from hiddenlab.data.ffcv_files import prepare
from hiddenlab.data.testing import cifar_checksums_off, make_cfg, write_cifar

LOADER_NAMES = ("torchvision", "gpu", "ffcv")


def time_loader(cfg, device: torch.device, epochs: int) -> dict:
    t0 = time.perf_counter()
    bundle = build_data(cfg, device)
    setup = time.perf_counter() - t0
    times, images = [], 0
    for epoch in range(epochs):
        bundle.train.set_epoch(epoch)
        t = time.perf_counter()
        n = 0
        for x, y in bundle.train:
            n += len(y)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t)
        images = n
    steady = times[1:] or times
    return {"loader": cfg.loader, "images_per_s": images * len(steady) / sum(steady),
            "first_epoch_s": times[0], "epoch_s": sum(steady) / len(steady), "setup_s": setup,
            "images": images}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=50_000, help="training images (default 50,000)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per loader, first one a warm-up")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="torchvision worker processes / FFCV threads")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--loaders", nargs="+", choices=LOADER_NAMES, default=list(LOADER_NAMES))
    p.add_argument("--data-root", default=None, help="keep the generated files here (default: a "
                   "temporary folder)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device")
    device = torch.device(args.device)

    os.environ["HIDDENLAB_OFFLINE"] = "1"
    cifar_checksums_off()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.data_root or tmp)
        t = time.perf_counter()
        # all images but the 10 validation ones are trained on: val_size must be >= 1
        if not (root / "cifar-10-batches-py" / "test_batch").exists():
            write_cifar(root, args.images + 10, 100)
        cfg = dict(dataset="cifar10", model="conv6", augment="crop-flip", data_root=str(root),
                   val_size=10, batch_size=args.batch_size, num_workers=args.workers,
                   channels_last=args.device == "cuda")
        if "ffcv" in args.loaders:
            prepare(DATASETS["cifar10"], make_cfg(**cfg), root, num_workers=args.workers)
        prep = time.perf_counter() - t
        rows = [time_loader(make_cfg(loader=name, **cfg), device, args.epochs)
                for name in args.loaders]

    base = next((r["images_per_s"] for r in rows if r["loader"] == "torchvision"), None)
    for r in rows:
        r["vs_torchvision"] = r["images_per_s"] / base if base else None
    info = {"device": args.device, "cpus": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "images": args.images,
            "batch_size": args.batch_size, "workers": args.workers, "epochs": args.epochs,
            "augment": "crop 32 pad 4 + flip", "data_prep_s": prep,
            "gpu": torch.cuda.get_device_name(device) if args.device == "cuda" else None}
    if args.json:
        print(json.dumps({"config": info, "results": rows}, indent=2))
        return 0
    print(f"CIFAR-format data, {args.images:,} training images, batch {args.batch_size}, "
          f"{args.workers} workers, device {args.device}, {args.epochs - 1} timed epoch(s) after a "
          f"warm-up; data written in {prep:.1f} s")
    print(f"{'loader':<12} {'images/s':>10} {'vs torchvision':>15} {'epoch s':>8} "
          f"{'first epoch s':>14} {'setup s':>8}")
    for r in rows:
        ratio = f"{r['vs_torchvision']:.2f}x" if r["vs_torchvision"] else "-"
        print(f"{r['loader']:<12} {r['images_per_s']:>10,.0f} {ratio:>15} {r['epoch_s']:>8.2f} "
              f"{r['first_epoch_s']:>14.2f} {r['setup_s']:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
