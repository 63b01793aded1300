"""What BatchNorm recalibration changes: the same trained network evaluated with the running
statistics gathered during training and with statistics re-estimated on the evaluation network.

Methods that train on sampled networks (Zhou's supermask, slot-ps) evaluate a deterministic one
(expected mask / argmax): the running statistics were averaged over other networks than the one
evaluated. Each trial here trains with `recalibrate_bn=False` (so training is unaffected), then
its final network's test accuracy is measured twice, without and with `RecalibrateBN` (the hook
the trainer adds by default for these methods). Edge-popup, which trains and evaluates the same
network, is the control. A BatchNorm model on real images (fashion-mnist, offline from Debian's
`dataset-fashion-mnist`; `--dataset synthetic` where it is missing).

    python benchmarks/bn_recalibration.py --epochs 3 --subset 12000 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import hiddenlab  # noqa: F401  (registries)
from hiddenlab.config import TrialConfig
from hiddenlab.study.trainer import RecalibrateBN, Trial, resolve_device


def measure(method: str, args, seed: int) -> dict:
    cfg = TrialConfig(method=method, model=args.model, width_mult=args.width, dataset=args.dataset,
                      subset=args.subset, epochs=args.epochs, seed=seed, num_workers=0,
                      recalibrate_bn=False)
    t = Trial(cfg, resolve_device(cfg))
    t0 = time.time()
    for epoch in range(1, cfg.epochs + 1):
        t.train_epoch(epoch, progress=False)
    trained_s = time.time() - t0
    _, running = t.evaluate(t.data.test)
    RecalibrateBN(t.model, t.data.train, cfg.recalibrate_batches).before_eval()
    _, recalibrated = t.evaluate(t.data.test)
    return {"method": method, "seed": seed, "test_acc_running_stats": running,
            "test_acc_recalibrated": recalibrated, "batches": cfg.recalibrate_batches,
            "train_s": trained_s}


def table(rows: list[dict]) -> str:
    out = ["| method | seeds | test acc, training's running stats | test acc, recalibrated | "
           "difference (points) |", "|---|---:|---:|---:|---:|"]
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        a = [100 * r["test_acc_running_stats"] for r in mine]
        b = [100 * r["test_acc_recalibrated"] for r in mine]
        d = [y - x for x, y in zip(a, b)]
        sd = (lambda v: f" ± {statistics.stdev(v):.1f}" if len(v) > 1 else "")
        out.append(f"| {method} | {len(mine)} | {statistics.mean(a):.1f}{sd(a)} | "
                   f"{statistics.mean(b):.1f}{sd(b)} | {statistics.mean(d):+.1f}{sd(d)} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=["supermask", "slot-ps", "edgepopup"])
    p.add_argument("--model", default="cifar-resnet18")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--subset", type=int, default=12000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for seed in args.seeds:
        for method in args.methods:
            rows.append(measure(method, args, seed))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{args.model} (width {args.width}) on {args.dataset} ({args.subset} training "
          f"images), {args.epochs} epochs, each method's recipe\n")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
