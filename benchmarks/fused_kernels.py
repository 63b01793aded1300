"""The fused numba kernels (models/selection/fused.py) against the numpy paths they replace, side
by side in one process: `fused.ENABLED` is switched between interleaved repeats, so the same
trial (same weights, scores and data) runs both ways under the same load.

Two measures per model and method, each the median over repeats (`--repeats`) of the time of
`--steps` consecutive calls:

* `selection`: every selection layer's effective weight and its backward to the scores (no
  matrix products), with the caches flushed first (a 64 MB pass), as inside a training step
  where the products have just evicted them;
* `step`: the whole training step on random data (forward, cross-entropy, backward, the
  trainer's SGD), the figure the epoch benchmark's ratios are made of; dense training's step,
  timed in the same repeats, gives each its ratio to dense (the median of the paired ratios).

CPU, one torch thread. Not a test: run by hand (~2 minutes).

    python benchmarks/fused_kernels.py
    python benchmarks/fused_kernels.py --models conv6 --methods supermask --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from hiddenlab.config import TrialConfig
from hiddenlab.models import build_model
from hiddenlab.models.selection import fused, selection_layers
from hiddenlab.models.selection.kernels import tune_host_allocator
from hiddenlab.study.trainer import make_optimizer

SHAPES = {"lenet-300-100": (1, 28, 28), "conv6": (3, 32, 32), "conv4": (3, 32, 32)}


def build(model: str, method: str, batch: int):
    extra = {"K": 8} if method.startswith("slot") else {}
    cfg = TrialConfig(method=method, model=model, device="cpu", **extra)
    torch.manual_seed(0)
    net = build_model(cfg, SHAPES[model], 10).train()
    opt = make_optimizer(cfg, [p for p in net.parameters() if p.requires_grad])
    x, y = torch.randn(batch, *SHAPES[model]), torch.randint(0, 10, (batch,))
    return net, opt, x, y


def selection_pass(net, flush: torch.Tensor) -> float:
    flush.mul_(1.0)
    layers = [layer for _, layer in selection_layers(net)]
    start = time.perf_counter()
    for layer in layers:
        w = layer.compute_weight()
        w.backward(torch.ones_like(w))
    elapsed = time.perf_counter() - start
    net.zero_grad(set_to_none=True)
    return elapsed


def training_step(net, opt, x, y) -> float:
    start = time.perf_counter()
    loss = F.cross_entropy(net(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def measure(model: str, method: str, args, steps: int, dense) -> dict:
    net, opt, x, y = build(model, method, args.batch)
    flush = torch.ones(16 << 20)
    times = {(kind, on): [] for kind in ("selection", "step") for on in (False, True)}
    dense_s = []
    for repeat in range(args.repeats + 1):          # the first repeat warms up
        base = sum(training_step(*dense) for _ in range(steps)) / steps
        for on in ((True, False) if repeat % 2 else (False, True)):
            fused.ENABLED = on
            sel = sum(selection_pass(net, flush) for _ in range(steps))
            step = sum(training_step(net, opt, x, y) for _ in range(steps))
            if repeat:
                times["selection", on].append(sel / steps)
                times["step", on].append(step / steps)
        if repeat:
            dense_s.append(base)
    fused.ENABLED = True
    row = {"model": model, "method": method, "dense_step_ms": statistics.median(dense_s) * 1e3}
    for kind in ("selection", "step"):
        numpy_ms = statistics.median(times[kind, False]) * 1e3
        fused_ms = statistics.median(times[kind, True]) * 1e3
        row.update({f"{kind}_numpy_ms": numpy_ms, f"{kind}_fused_ms": fused_ms,
                    f"{kind}_speedup": numpy_ms / fused_ms})
    for on, name in ((False, "numpy"), (True, "fused")):
        row[f"{name}_vs_dense"] = statistics.median(
            t / d for t, d in zip(times["step", on], dense_s))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["lenet-300-100", "conv6"], choices=SHAPES)
    p.add_argument("--methods", nargs="+", default=["edgepopup", "supermask", "slot-ps"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if not fused.compiled():
        raise SystemExit("numba is not installed: there are no fused kernels to compare")
    torch.set_num_threads(1)
    tune_host_allocator()
    print(f"{'model':15} {'method':10} {'selection numpy':>16} {'fused':>8} {'x':>6}"
          f" {'step numpy':>11} {'fused':>8} {'x':>6} {'dense':>8} {'vs dense: numpy':>16}"
          f" {'fused':>6}")
    rows = []
    for model in args.models:
        steps = min(args.steps, 2) if model.startswith("conv") else args.steps  # ~0.2 s a step
        dense = build(model, "dense", args.batch)   # (net, optimiser, x, y)
        for method in args.methods:
            r = measure(model, method, args, steps, dense)
            rows.append(r)
            print(f"{model:15} {method:10} {r['selection_numpy_ms']:13.2f} ms "
                  f"{r['selection_fused_ms']:8.2f} {r['selection_speedup']:5.2f}x"
                  f" {r['step_numpy_ms']:8.2f} ms {r['step_fused_ms']:8.2f}"
                  f" {r['step_speedup']:5.2f}x {r['dense_step_ms']:8.2f}"
                  f" {r['numpy_vs_dense']:15.2f}x {r['fused_vs_dense']:5.2f}x", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
