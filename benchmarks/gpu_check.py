"""The GPU check: one run (at most ~8 minutes on one H100/H200) measuring what the CPU cannot.

1. Step time of each selection method against dense training (`step_vs_dense`), side by side
   in one process, bf16 autocast + channels-last: Conv6 (3x32x32, batch 128) and ResNet-50
   (3x224x224, batch 256); methods interleaved, the order rotating each repeat; the ratio is the
   median over repeats of (method / dense in the same repeat). Target: <= 1.10x.
   A step is the trainer's: forward, cross-entropy, backward, its optimiser (fused SGD).
2. Packed trials (`packing`): ms per training step of N trials in one process (N = 1, 4, 8, 16)
   for Conv6 and LeNet-300-100 (edge-popup with two k, and dense), packed
   (`hiddenlab.study.packing.Pack`) against the same N trials one after another (one trial per
   process computes exactly that), and `torch.func.vmap` for dense; `speedup` = trials per
   hour packed / one after another. Target: >= 3x at some N. Data: the device-resident loader
   on synthetic images (per member its own order), so the loop is the trainer's own.

Only PyTorch and torchvision are needed: `benchmarks/gpu_check.sh` puts this checkout's
hiddenlab on PYTHONPATH (no Ray, FFCV, pandas or pyarrow is imported; the JSON says which
optional packages were). `--quick` is a tiny CPU run of the same code (the test suite runs it).

    bash benchmarks/gpu_check.sh --json gpu_check.json --results-md benchmarks/RESULTS.md
    python benchmarks/gpu_check.py --write-section gpu_check.json --results-md benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

METHODS = ["dense", "edgepopup", "supermask", "slot-gs", "slot-ps"]
OPTIONAL = ("ray", "ffcv", "pyarrow", "pandas", "seaborn", "matplotlib", "sklearn")
SELECTION_TARGET, PACKING_TARGET = 1.10, 3.0
START, END = "<!-- gpu-check:start -->", "<!-- gpu-check:end -->"

# (model, input shape, batch, width) per part, full and quick
FULL = dict(step=[("conv6", (3, 32, 32), 128, 1.0), ("resnet50", (3, 224, 224), 256, 1.0)],
            step_steps=5, step_repeats=5, warmup=3,
            pack=[("conv6", (3, 32, 32), 128, 1.0), ("lenet-300-100", (1, 28, 28), 128, 1.0)],
            members=[1, 4, 8, 16], pack_steps=20, pack_repeats=3)
QUICK = dict(step=[("conv6", (3, 8, 8), 4, 0.0625), ("resnet50", (3, 32, 32), 2, 0.03125)],
             step_steps=1, step_repeats=1, warmup=0,
             pack=[("conv6", (3, 8, 8), 4, 0.0625), ("lenet-300-100", (1, 28, 28), 8, 0.1)],
             members=[1, 2], pack_steps=1, pack_repeats=1)


# --- 1. selection step time against dense ---------------------------------------------------------
class Step:
    """One method's network, optimiser and a fixed batch: `run()` is one training step."""

    def __init__(self, method, model, shape, batch, width, device, bf16, channels_last):
        from hiddenlab.config import TrialConfig
        from hiddenlab.models import build_model
        from hiddenlab.study.trainer import make_optimizer, to_channels_last

        kw = {"K": 8} if method.startswith("slot") else {"k": 0.5} if method == "edgepopup" \
            else {}
        cfg = TrialConfig(method=method, model=model, width_mult=width, **kw)
        torch.manual_seed(0)
        with torch.device(device):  # draw the frozen values where they live: fast, no copy
            self.net = build_model(cfg, shape, 1000 if model.startswith("resnet") else 10)
        if channels_last:
            to_channels_last(self.net)
        self.opt = make_optimizer(cfg.replace(lr=1e-3), [p for p in self.net.parameters()
                                                         if p.requires_grad])
        self.x = torch.randn(batch, *shape, device=device)
        if channels_last:
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.y = torch.randint(0, 10, (batch,), device=device)
        self.criterion = nn.CrossEntropyLoss()
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else \
            contextlib.nullcontext()
        self.net.train()

    def run(self) -> None:
        with self.autocast:
            loss = self.criterion(self.net(self.x).float(), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_vs_dense(model, shape, batch, width, device, plan, bf16, channels_last) -> list[dict]:
    steps = {m: Step(m, model, shape, batch, width, device, bf16, channels_last)
             for m in METHODS}
    for s in steps.values():
        for _ in range(plan["warmup"]):
            s.run()
    times = {m: [] for m in METHODS}
    for rep in range(plan["step_repeats"]):
        order = METHODS[rep % len(METHODS):] + METHODS[:rep % len(METHODS)]
        for m in order:
            sync(device)
            t0 = time.perf_counter()
            for _ in range(plan["step_steps"]):
                steps[m].run()
            sync(device)
            times[m].append((time.perf_counter() - t0) * 1e3 / plan["step_steps"])
    rows = []
    for m in METHODS:
        ratio = statistics.median(a / d for a, d in zip(times[m], times["dense"]))
        rows.append({"model": model, "input": list(shape), "batch": batch, "width": width,
                     "method": m, "ms_per_step": round(statistics.median(times[m]), 3),
                     "vs_dense": round(ratio, 3),
                     "meets_target": m == "dense" or ratio <= SELECTION_TARGET})
    del steps
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


# --- 2. packed trials --------------------------------------------------------------------------------
def packing(model, shape, batch, width, device, plan) -> list[dict]:
    from packing import bench_steps  # benchmarks/packing.py

    rows = []
    for method in ("edgepopup", "dense"):
        rows += bench_steps(model, method, plan["members"], device.type, plan["pack_steps"],
                            plan["pack_repeats"], batch, width, shape, vmap=True)
    for r in rows:
        r["meets_target"] = r["mode"] != "packed" or \
            r["speedup_vs_one_after_another"] >= PACKING_TARGET
    return rows


# --- report ------------------------------------------------------------------------------------------
def section(result: dict) -> str:
    """The RESULTS.md section for one result (between the gpu-check markers)."""
    quick = result["mode"] == "quick"
    lines = [START, "## GPU check (benchmarks/gpu_check.sh)", "",
             f"`bash benchmarks/gpu_check.sh{' --quick' if quick else ''}`, {result['date']}: "
             f"{result['device']}; torch {result['torch']}; {result['wall_s']:.0f} s"
             + (" (quick mode: tiny CPU shapes, a smoke test of the script, not a measurement)"
                if quick else "") + ".", ""]
    if result["step"]:
        lines += ["Step time against dense (bf16 autocast + channels-last where on CUDA; target "
                  f"<= {SELECTION_TARGET:.2f}x):", "",
                  "| model (input, batch) | method | ms/step | vs dense | target |",
                  "|---|---|---:|---:|---|"]
        for r in result["step"]:
            lines.append(f"| {r['model']} ({'x'.join(map(str, r['input']))}, {r['batch']}) | "
                         f"{r['method']} | {r['ms_per_step']} | {r['vs_dense']:.3f}x | "
                         f"{'' if r['method'] == 'dense' else 'met' if r['meets_target'] else 'NOT met'} |")
        lines.append("")
    if result["packing"]:
        lines += [f"Packed trials: ms per training step of N trials in one process (target: "
                  f"packed >= {PACKING_TARGET:.0f}x the trials per hour of one trial per "
                  "process):", "",
                  "| model | method | N | mode | ms/step | ms per trial-step | trials/hour vs one after another |",
                  "|---|---|---:|---|---:|---:|---:|"]
        for r in result["packing"]:
            lines.append(f"| {r['model']} | {r['method']} | {r['members']} | {r['mode']} | "
                         f"{r['ms_per_step']} | {r['ms_per_trial_step']} | "
                         f"{r['speedup_vs_one_after_another']:.2f}x |")
        lines.append("")
    if result.get("skipped"):
        lines += [f"Skipped (time budget): {', '.join(result['skipped'])}.", ""]
    for error in result.get("errors", []):
        lines += [f"Failed: {error}", ""]
    lines.append(END)
    return "\n".join(lines)


def write_section(results_md: Path, result: dict) -> None:
    """Replace the gpu-check section of RESULTS.md (or append one)."""
    text = results_md.read_text() if results_md.exists() else "# Benchmark results\n"
    new = section(result)
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + new + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    results_md.write_text(text)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes on the CPU (a smoke test)")
    p.add_argument("--device", default=None, help="default: cuda, cpu with --quick")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--results-md", type=Path, default=None,
                   help="write the result as the gpu-check section of this RESULTS.md")
    p.add_argument("--write-section", type=Path, default=None, metavar="JSON",
                   help="only write the section from an earlier run's JSON")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="skip what would start after this many seconds")
    args = p.parse_args(argv)
    if args.write_section:
        result = json.loads(args.write_section.read_text())
        write_section(args.results_md or Path(__file__).with_name("RESULTS.md"), result)
        return result

    t0 = time.time()
    plan = QUICK if args.quick else FULL
    device = torch.device(args.device or ("cpu" if args.quick else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("no CUDA device is visible (use --quick for the CPU smoke test)")
    torch.set_num_threads(min(torch.get_num_threads(), 2) if args.quick else
                          torch.get_num_threads())
    on_gpu = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if on_gpu else \
        f"{os.cpu_count()}-core {platform.machine()} CPU"
    result = {"mode": "quick" if args.quick else "full", "device": name,
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
              "step": [], "packing": [], "skipped": [], "errors": []}
    if on_gpu:
        torch.backends.cudnn.benchmark = True
    jobs = [("step", m, lambda m=m: step_vs_dense(*m, device, plan, on_gpu, on_gpu))
            for m in plan["step"]]
    jobs += [("packing", m, lambda m=m: packing(*m, device, plan)) for m in plan["pack"]]
    for part, m, job in jobs:
        if time.time() - t0 > args.budget_s:
            result["skipped"].append(f"{part} {m[0]}")
            continue
        print(f"[gpu-check] {part} {m[0]} ...", flush=True)
        try:
            result[part] += job()
        except Exception as e:  # one device run: keep what the other parts measure
            if args.quick:
                raise
            traceback.print_exc()
            result["errors"].append(f"{part} {m[0]}: {type(e).__name__}: {e}")
    result["wall_s"] = time.time() - t0
    result["optional_imported"] = sorted(m for m in OPTIONAL if m in sys.modules)
    print(section(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.results_md:
        write_section(args.results_md, result)
    return result


if __name__ == "__main__":
    main()
