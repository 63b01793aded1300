"""Exported network files against float32 checkpoints, for Conv6 (CIFAR-10) and ResNet-50
(ImageNet) at each method's default k / K.

Each network is built as a trial builds it (seeded, on the CPU), put in a checkpoint as the
trainer writes it, exported with `hiddenlab.study.netexport.export_checkpoint` and loaded back;
sizes do not depend on training (the selection's bits are stored as they are), so the networks are
untrained. Columns: the file's bytes, the theoretical bits / 8 (connections x bits per connection
+ BatchNorm state), the float32 checkpoint of the same network (`torch.save` of the loaded plain
module's state dict), the trial's model state as the reference code saves it (frozen values and
scores, float32), and the export and load times.

    python benchmarks/export_sizes.py [--models conv6 resnet50] [--out benchmarks/EXPORT.md]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import torch

from hiddenlab.config import TrialConfig
from hiddenlab.study import netexport as nx
from hiddenlab.study.trainer import seed_everything

DATASET = {"conv6": "cifar10", "resnet50": "imagenet"}
METHODS = {"edgepopup": {}, "supermask": {}, "slot-gs": {}, "dense": {}}


def checkpoint(cfg: TrialConfig) -> dict:
    """What the trainer saves, for an untrained network."""
    shape, classes = nx.data_facts(cfg)
    seed_everything(cfg.seed)
    model = cfg.method_spec.build_model(cfg, shape, classes)
    return {"config": cfg.to_dict(), "epoch": 0, "model": model.state_dict(), "history": [],
            "best": None}


def measure(model: str, method: str, tmp: Path) -> dict:
    cfg = TrialConfig(method=method, model=model, dataset=DATASET[model], **METHODS[method])
    ckpt = checkpoint(cfg)
    t0 = time.perf_counter()
    ex = nx.export_checkpoint(ckpt, tmp / "net.hlnet")
    t1 = time.perf_counter()
    nf = nx.read(tmp / "net.hlnet")
    t2 = time.perf_counter()
    buf = io.BytesIO()
    torch.save(nf.module.state_dict(), buf)
    label = {"edgepopup": lambda: f"k={cfg.k}", "slot-gs": lambda: f"K={cfg.K}"}.get(
        method, lambda: "")()
    return {"model": model, "method": f"{method} {label}".strip(),
            "connections": ex.size.connections, "file": ex.bytes,
            "theory": -(-ex.size.bits // 8),
            "float32 ckpt": buf.tell(), "trial state": ex.size.state_bytes,
            "export_s": t1 - t0, "load_s": t2 - t1}


def table(rows: list[dict]) -> str:
    head = ["model", "method", "connections", "file bytes", "theory bits/8", "file/theory",
            "float32 ckpt", "float32/file", "trial state (ref. code)", "export s", "load s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["model"], r["method"], f"{r['connections']:,}", f"{r['file']:,}",
            f"{r['theory']:,}", f"{r['file'] / r['theory']:.4f}", f"{r['float32 ckpt']:,}",
            f"{r['float32 ckpt'] / r['file']:.1f}x", nx.human_bytes(r["trial state"]),
            f"{r['export_s']:.1f}", f"{r['load_s']:.1f}"]) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(DATASET), choices=list(DATASET))
    p.add_argument("--out", default=None, help="also write the table to this file")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for model in args.models:
            for method in METHODS:
                rows.append(measure(model, method, Path(d)))
                print(rows[-1], file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
