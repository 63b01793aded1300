"""Sweep throughput: trials/hour of a small real study, one trial per device vs several sharing it.

The same tiny study (a few hiddenlab trials: every selection method and dense, real training
with `hiddenlab.study.trainer.run_trial`, per-epoch checkpoints through Ray Tune) runs twice on
one embedded Ray instance with `ray.tune.Tuner`:

* exclusive: each trial gets the whole device: `{"gpu": 1}` on a GPU machine; on a CPU machine
  `{"cpu": <all cores>}` and that many torch threads: one trial at a time.
* shared: fractional resources: `{"cpu": 1, "gpu": 1/N}` (N = `--per-gpu`, default 4) on a GPU,
  so N trials share it; `{"cpu": 1}` and one torch thread each on a CPU: one trial per core.

Reported: wall time of each `Tuner.fit`, trials/hour, the speed-up shared/exclusive, and the
concurrency actually reached (from each trial's start and end times). Trials report through the
study package's `TuneReporter` (hiddenlab.study.reporter) when it is there, else through a
minimal reporter defined here. Not a test: run it by hand (~2 minutes on a 2-core CPU).

    python benchmarks/sweep_throughput.py                    # CPU: 1 vs 2 concurrent
    python benchmarks/sweep_throughput.py --per-gpu 4        # GPU: 1 vs 4 trials per GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

METHODS = ["edgepopup", "supermask", "slot-gs", "dense"]
METHOD_KW = {"dense": dict(lr=0.01), "edgepopup": dict(k=0.5),
             "supermask": dict(lr=100.0, weight_decay=0.0), "slot-gs": dict(K=8),
             "slot-ps": dict(K=8, lr=25.0, weight_decay=0.0)}


def study_configs(gpu: bool, trials: int, epochs: int) -> list[dict]:
    """The tiny study: `trials` trial configs cycling through METHODS (seeds 0, 1, ...)."""
    from hiddenlab.config import TrialConfig

    if gpu:  # the case: Conv6 on CIFAR-shaped data, the device-resident loader
        base = dict(model="conv6", dataset="synthetic", synthetic_shape=(3, 32, 32),
                    synthetic_size=50_000, batch_size=128, device="cuda", precision="bf16",
                    channels_last=True, loader="gpu")
    else:
        base = dict(model="conv4", width_mult=0.25, dataset="synthetic",
                    synthetic_shape=(3, 16, 16), synthetic_size=2048, batch_size=64,
                    device="cpu")
    out = []
    for i in range(trials):
        method = METHODS[i % len(METHODS)]
        kw = {**base, **METHOD_KW[method]}
        if gpu and method.startswith("slot"):
            # The trainer's `model.to(memory_format=torch.channels_last)` raises on slot
            # machines' 5-D (out, in, kh, kw, K) values; contiguous for them until it is fixed.
            kw["channels_last"] = False
        cfg = TrialConfig(method=method, epochs=epochs, seed=i // len(METHODS),
                          schedule="constant", save_selection=False, **kw)
        out.append(cfg.to_dict())
    return out


class _MinimalTuneReporter:
    """The trainer's Reporter protocol over `ray.tune.report` (used when hiddenlab.study has no
    TuneReporter): checkpoint each epoch's state, resume from Tune's latest checkpoint."""

    progress = False

    def __init__(self, cfg, run_id, *args, **kwargs):
        self.cfg, self.run_id = cfg, run_id

    def load_state(self):
        import torch
        from ray import tune

        ckpt = tune.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as d:
            path = os.path.join(d, "checkpoint.pt")
            return torch.load(path, map_location="cpu", weights_only=False) \
                if os.path.exists(path) else None

    def report(self, metrics, state=None, artifacts=None):
        import torch
        from ray import tune

        plain = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
        if state is None:
            tune.report(plain)
            return
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, os.path.join(d, "checkpoint.pt"))
            tune.report(plain, checkpoint=tune.Checkpoint.from_directory(d))


def reporter_class():
    try:
        from hiddenlab.study.reporter import TuneReporter

        return TuneReporter, "hiddenlab.study.reporter.TuneReporter"
    except ImportError:
        return _MinimalTuneReporter, "benchmarks/sweep_throughput._MinimalTuneReporter"


class _Timed:
    """Wraps a reporter: every report carries the trial's start time and the time now."""

    def __init__(self, inner, started):
        self.inner, self.started = inner, started
        self.progress = False

    def load_state(self):
        return self.inner.load_state()

    def report(self, metrics, state=None, artifacts=None):
        self.inner.report({**metrics, "bench_start": self.started, "bench_now": time.time()},
                          state, artifacts)


def trainable(config: dict) -> None:
    import torch

    from hiddenlab.config import TrialConfig
    from hiddenlab.study.trainer import run_trial

    started = time.time()
    torch.set_num_threads(int(config["threads"]))
    cfg = TrialConfig.from_dict(config["trial"])
    cls, _ = reporter_class()
    run_trial(cfg, _Timed(cls(cfg, cfg.run_id()), started))


def run_mode(name: str, configs: list[dict], resources: dict, threads: int, storage: str,
             concurrent: int) -> dict:
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space={"trial": tune.grid_search(configs), "threads": threads},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )
    t0 = time.time()
    results = tuner.fit()
    wall = time.time() - t0
    spans, errors, accs = [], 0, []
    for r in results:
        if r.error is not None or not r.metrics or "bench_start" not in r.metrics:
            errors += 1
            continue
        spans.append((r.metrics["bench_start"], r.metrics["bench_now"]))
        accs.append((r.config["trial"]["method"], r.metrics.get("epoch"),
                     round(r.metrics.get("val_acc", float("nan")), 3)))
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    n = len(configs)
    return {"mode": name, "trials": n, "errors": errors, "resources": resources,
            "threads_per_trial": threads, "max_concurrent_trials": concurrent,
            "wall_s": round(wall, 1), "trials_per_hour": round(n / wall * 3600, 1),
            "trial_s_median": round(statistics.median(e - s for s, e in spans), 1) if spans else None,
            "concurrency_reached": peak,
            # (method, epochs, val_acc) per trial: they really train (thread counts change the
            # float summation order, so a chaotic trial may end elsewhere in the other mode)
            "trials_done": sorted(accs)}


def main(argv=None):
    import ray
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--trials", type=int, default=None,
                   help="trials in the study (default: 4 per CPU core; 2 x per-gpu per GPU)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--per-gpu", type=int, default=4, help="trials sharing one GPU (shared mode)")
    p.add_argument("--cpus", type=int, default=None, help="CPUs Ray may use (default: all)")
    p.add_argument("--threads-exclusive", type=int, default=None,
                   help="torch threads of an exclusive CPU trial (default: all the CPUs)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    gpu = torch.cuda.is_available() if args.device == "auto" else args.device == "cuda"
    cpus = args.cpus or os.cpu_count() or 1
    gpus = torch.cuda.device_count() if gpu else 0
    trials = args.trials or (2 * args.per_gpu * max(gpus, 1) if gpu else 4 * cpus)
    configs = study_configs(gpu, trials, args.epochs)
    if gpu:
        exclusive = ({"cpu": 1, "gpu": 1}, 1, gpus)
        shared = ({"cpu": 1, "gpu": 1.0 / args.per_gpu}, 1, gpus * args.per_gpu)
        device = f"{gpus} x {torch.cuda.get_device_name(0)}, {cpus} CPUs"
    else:
        threads = args.threads_exclusive or cpus
        exclusive = ({"cpu": cpus}, threads, 1)
        shared = ({"cpu": 1}, 1, cpus)
        device = f"{cpus}-core CPU"
    _, reporter = reporter_class()
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 then means quiet
    print(f"device: {device}; {trials} trials x {args.epochs} epochs of "
          f"{configs[0]['model']} ({', '.join(sorted(set(c['method'] for c in configs)))}); "
          f"reporter: {reporter}", flush=True)
    ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False,
             configure_logging=True, logging_level="ERROR")
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="hiddenlab-sweep-") as storage:
            for name, (res, threads, conc) in (("exclusive", exclusive), ("shared", shared)):
                row = run_mode(name, configs, res, threads, storage, conc)
                row["device"] = device
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        ray.shutdown()
    speedup = rows[1]["trials_per_hour"] / rows[0]["trials_per_hour"]
    print("| mode | resources per trial | threads | concurrent (reached) | wall s | "
          "trials/hour | vs exclusive |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['resources']} | {r['threads_per_trial']} | "
              f"{r['max_concurrent_trials']} ({r['concurrency_reached']}) | {r['wall_s']} | "
              f"{r['trials_per_hour']} | "
              f"{r['trials_per_hour'] / rows[0]['trials_per_hour']:.2f}x |")
    print(f"shared / exclusive trials per hour: {speedup:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "speedup": round(speedup, 3)}, indent=1))
    return rows


if __name__ == "__main__":
    main()
