"""Packed trials against one trial per process, side by side in one run.

Two parts (both by default; `--part study` or `--part step` for one):

* study: trials per hour of a real study run by `hiddenlab.study.runner.run_study` on an
  embedded Ray (all cores, one CPU per Ray trial) unpacked and with `--pack N`, one after the
  other in the same process (`--repeats R` alternates them A B B A ...). Studies: `quickstart`
  (what `hiddenlab study run quickstart` runs; `--quickstart-scale`) and a LeNet-300-100
  edge-popup sweep, k x seeds on 28x28 data (`--lenet-data fashion-mnist` or `synthetic`).
  Both modes must give the same run ids and one row per trial per epoch (`same_rows`); the
  largest differences of test accuracy and training loss between them are reported (float
  rounding of grouped vs plain layers).
* step: milliseconds per training step of N trials in one process (`--members`): the N trials
  one after another (`Trial.train_epoch`, what N unpacked trials compute), packed (`Pack`:
  grouped convolutions / bmm over the members' own effective weights), and for dense networks
  `torch.func` (`stack_module_state` + `functional_call` + `vmap`), the alternative that cannot
  run selection layers (data-dependent top-k, custom autograd Functions). Interleaved repeats,
  medians of paired ratios.

    python benchmarks/packing.py --json packing_cpu.json
    python benchmarks/packing.py --part step --device cuda --members 1 4 8 16
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch


# --- studies -------------------------------------------------------------------------------------
def lenet_study(data: str, ks, seeds: int, epochs: int, subset: int):
    """edge-popup on LeNet-300-100 across k x seeds (the Slot Machines/edge-popup MNIST axis)."""
    from hiddenlab.study.registry import Study
    from hiddenlab.study.spaces import Phase, Series

    fixed = dict(method="edgepopup", model="lenet-300-100", epochs=epochs, batch_size=128,
                 eval_batch_size=1000, schedule="cosine", num_workers=0)
    if data == "synthetic":
        fixed.update(dataset="synthetic", synthetic_shape=(1, 28, 28), synthetic_size=subset)
    else:
        fixed.update(dataset=data, subset=subset)
    return Study("bench-lenet", "LeNet-300-100 edge-popup, k x seeds", (),
                 lambda scale: [Phase("select", [Series("edge-popup", fixed,
                                                        axes={"k": list(ks)})])],
                 seeds={"smoke": seeds, "paper": seeds})


def run_once(study, scale: str | None, pack: int, cpus: int, storage: Path) -> dict:
    """One study run in `storage` (emptied first: finetune children name their parent by its
    path in the storage, so both modes must use the same path to plan the same run ids)."""
    from hiddenlab.study import export
    from hiddenlab.study.runner import RunOptions, run_study

    shutil.rmtree(storage, ignore_errors=True)
    opts = RunOptions(scale=scale, storage=str(storage), verbose=0, figures=False, pack=pack,
                      num_cpus=cpus)
    t0 = time.time()
    summary = run_study(study, opts)
    wall = time.time() - t0
    df = export.load(str(storage), summary.study)
    return {"pack": pack, "trials": summary.planned, "ok": summary.ok, "wall_s": round(wall, 1),
            "trials_per_hour": round(summary.planned / wall * 3600, 1), "table": df}


def compare(a, b) -> dict:
    """Same run ids and rows, and the largest differences of the results between two runs."""
    keys = ["run_id", "epoch"]
    m = a.merge(b, on=keys, suffixes=("", "_b"))
    same = (len(m) == len(a) == len(b) and
            set(map(tuple, a[keys].astype(str).values)) == set(map(tuple, b[keys].astype(str).values)))
    out = {"same_rows": bool(same)}
    for col in ("train_loss", "val_acc", "test_acc"):
        out[f"max_{col}_diff"] = float((m[col] - m[f"{col}_b"]).abs().max())
    return out


def bench_study(name: str, study, scale, pack: int, repeats: int, cpus: int) -> list[dict]:
    order = [1, pack] + [pack, 1] * (repeats - 1)  # A B (B A)...: drift hits both alike
    runs: dict[int, list[dict]] = {1: [], pack: []}
    with tempfile.TemporaryDirectory(prefix="hiddenlab-packbench-") as root:
        for p in order:
            r = run_once(study, scale, p, cpus, Path(root) / "storage")
            print(f"  {name} pack {p}: {r['trials']} trials, {r['wall_s']} s, "
                  f"{r['trials_per_hour']} trials/h, ok={r['ok']}", flush=True)
            runs[p].append(r)
    diff = compare(runs[1][0]["table"], runs[pack][0]["table"])
    print(f"  {name}: {diff}", flush=True)
    out = []
    for p, rs in runs.items():
        tph = statistics.median(r["trials_per_hour"] for r in rs)
        out.append({"study": name, "pack": p, "trials": rs[0]["trials"],
                    "wall_s": [r["wall_s"] for r in rs], "trials_per_hour": round(tph, 1),
                    "ok": all(r["ok"] for r in rs), "rows": len(rs[0]["table"]), **diff})
    base = out[0]["trials_per_hour"]
    for row in out:
        row["vs_unpacked"] = round(row["trials_per_hour"] / base, 2)
    return out


# --- steps ---------------------------------------------------------------------------------------
def step_configs(model: str, method: str, n: int, device: str, steps: int, batch: int,
                 width: float, shape) -> list:
    from hiddenlab.config import TrialConfig

    kw = dict(method=method, model=model, dataset="synthetic", synthetic_shape=tuple(shape),
              synthetic_size=batch * steps, batch_size=batch, device=device, epochs=1000,
              schedule="constant", width_mult=width, save_selection=False)
    if device == "cuda":
        kw.update(precision="bf16", channels_last=True)
    if method.startswith("slot"):
        kw["K"] = 8
    return [TrialConfig(**kw, seed=s, **({"k": 0.3 + 0.4 * (s % 2)} if method == "edgepopup"
                                           else {})) for s in range(n)]


class VmapRunner:
    """N dense networks as one `torch.func.vmap` over their stacked parameters; one fused SGD
    step over the stacked tensors."""

    def __init__(self, trials):
        from torch.func import functional_call, stack_module_state, vmap

        from hiddenlab.study.trainer import make_optimizer

        models = [t.model for t in trials]
        self.params, self.buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")
        self.trials = trials
        self.fn = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)))
        self.opt = make_optimizer(trials[0].cfg, list(self.params.values()))
        self.autocast = trials[0].autocast

    def train_epoch(self, epoch: int) -> None:
        crit = self.trials[0].criterion
        for t in self.trials:
            t.data.train.set_epoch(epoch)
        for batch in zip(*(t.data.train for t in self.trials)):
            x = torch.stack([b[0] for b in batch])
            y = torch.stack([b[1] for b in batch])
            with self.autocast:
                logits = self.fn(self.params, self.buffers, x)
                loss = sum(crit(logits[j].float(), y[j]) for j in range(len(batch)))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench_steps(model, method, members, device, steps, repeats, batch, width, shape,
                vmap: bool) -> list[dict]:
    """ms per training step of N trials: one after another, packed, (vmap)."""
    from hiddenlab.study.packing import Pack
    from hiddenlab.study.trainer import Trial

    rows = []
    for n in members:
        cfgs = step_configs(model, method, n, device, steps, batch, width, shape)
        dev = torch.device(device)
        pack = Pack(cfgs, dev)
        alone = [Trial(cfg, dev) for cfg in cfgs]
        modes = {"one after another": lambda e: [t.train_epoch(e, False) for t in alone],
                 "packed": lambda e: pack.train_epoch(e, False)}
        if vmap and method == "dense":
            modes["vmap"] = VmapRunner([Trial(cfg, dev) for cfg in cfgs]).train_epoch
        times = {m: [] for m in modes}
        for m, fn in modes.items():  # warm-up (cudnn autotuning, allocator)
            fn(1)
        for rep in range(repeats):
            order = list(modes)[rep % len(modes):] + list(modes)[:rep % len(modes)]
            for m in order:
                sync(device)
                t0 = time.perf_counter()
                modes[m](2 + rep)
                sync(device)
                times[m].append((time.perf_counter() - t0) * 1e3 / steps)
        for m, ts in times.items():
            ratios = [a / b for a, b in zip(times["one after another"], ts)]
            rows.append({"model": model, "method": method, "members": n, "mode": m,
                         "ms_per_step": round(statistics.median(ts), 2),
                         "ms_per_trial_step": round(statistics.median(ts) / n, 2),
                         "speedup_vs_one_after_another": round(statistics.median(ratios), 2)})
        print("  " + "; ".join(f"{r['model']} {r['method']} N={n} {r['mode']}: "
                               f"{r['ms_per_step']} ms" for r in rows[-len(modes):]), flush=True)
    return rows


# --- main ----------------------------------------------------------------------------------------
def markdown(result: dict) -> str:
    lines = []
    if result.get("study"):
        lines += ["| study | trials | pack | wall s | trials/hour | vs unpacked | same rows | "
                  "max diff test acc / train loss |", "|---|---:|---:|---|---:|---:|---|---|"]
        for r in result["study"]:
            lines.append(f"| {r['study']} | {r['trials']} | {r['pack']} | "
                         f"{', '.join(map(str, r['wall_s']))} | {r['trials_per_hour']:,} | "
                         f"{r['vs_unpacked']:.2f}x | {r['same_rows']} | "
                         f"{r['max_test_acc_diff']:.2g} / {r['max_train_loss_diff']:.2g} |")
        lines.append("")
    if result.get("step"):
        lines += ["| model | method | N | mode | ms/step | ms per trial-step | vs one after another |",
                  "|---|---|---:|---|---:|---:|---:|"]
        for r in result["step"]:
            lines.append(f"| {r['model']} | {r['method']} | {r['members']} | {r['mode']} | "
                         f"{r['ms_per_step']} | {r['ms_per_trial_step']} | "
                         f"{r['speedup_vs_one_after_another']:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=["study", "step", "both"], default="both")
    p.add_argument("--pack", type=int, default=16, help="pack size of the packed study runs")
    p.add_argument("--repeats", type=int, default=1, help="study runs per mode")
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    p.add_argument("--studies", nargs="+", choices=["quickstart", "lenet"],
                   default=["quickstart", "lenet"])
    p.add_argument("--quickstart-scale", default="paper")
    p.add_argument("--lenet-data", default="fashion-mnist")
    p.add_argument("--lenet-ks", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.9])
    p.add_argument("--lenet-seeds", type=int, default=4)
    p.add_argument("--lenet-epochs", type=int, default=3)
    p.add_argument("--lenet-subset", type=int, default=10000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--members", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--step-repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=10, help="steps per timed epoch")
    p.add_argument("--threads", type=int, default=1, help="torch threads (step part)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    result: dict = {"machine": f"{os.cpu_count()}-core {platform.machine()}, "
                               f"torch {torch.__version__}",
                    "date": time.strftime("%Y-%m-%d %H:%M"), "args": vars(args) | {"json": None},
                    "load_average_start": os.getloadavg()}
    if args.part in ("study", "both"):
        print("study throughput", flush=True)
        lenet = lenet_study(args.lenet_data, args.lenet_ks, args.lenet_seeds, args.lenet_epochs,
                            args.lenet_subset)
        studies = {"quickstart": ("quickstart", "quickstart", args.quickstart_scale),
                   "lenet": ("lenet-300-100 edge-popup", lenet, "smoke")}
        result["study"] = []
        for key in args.studies:
            name, study, scale = studies[key]
            result["study"] += bench_study(name, study, scale, args.pack, args.repeats,
                                           args.cpus)
    if args.part in ("step", "both"):
        print("step time", flush=True)
        torch.set_num_threads(args.threads)
        cpu = args.device == "cpu"
        result["step"] = []
        for model, width, shape in (("lenet-300-100", 1.0, (1, 28, 28)),
                                    ("conv6", 0.25 if cpu else 1.0, (3, 32, 32))):
            for method in ("dense", "edgepopup"):
                result["step"] += bench_steps(model, method, args.members, args.device,
                                              args.steps, args.step_repeats, 128, width, shape,
                                              vmap=True)
    result["load_average_end"] = os.getloadavg()
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
