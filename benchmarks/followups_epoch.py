"""One training epoch of IteRand and biprop against edge-popup, side by side in one run.

Each method's `Trial` (study/trainer.py: data, model, optimiser, hooks) is built once; every round
trains one epoch of each, in an order that rotates each round, so drift of a shared machine hits
every method alike. Reported per method: median wall and CPU (process: all threads) seconds per
epoch, and the medians over rounds of the paired ratios to edge-popup's epoch in the same round
(on a machine shared with other jobs the CPU-time ratio is the steadier one). Rows:

- `edgepopup`: the edge-popup recipe's layer (ranks |S|).
- `edgepopup-raw`: edge-popup ranking the raw scores (`--no-score-abs`), IteRand's mask: on the
  CPU its threshold takes numpy's partition, not the |S| radix select, so it separates the mask's
  cost from the re-draws'.
- `iterand`: IteRand with `--rerand-every` = the steps of one epoch (one re-draw of every layer
  per epoch; the paper's CIFAR-10 rate is one per 300 of ~352 steps) and r = 0.1.
- `biprop`: alpha * sign(W) on the kept weights.

Also timed: one re-draw of every IteRand layer alone (the hook's `on_step_end` on a due step).

    python benchmarks/followups_epoch.py --rounds 5 --threads 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from hiddenlab.config import TrialConfig
from hiddenlab.models.selection.iterand import Rerandomize
from hiddenlab.study.trainer import Trial

DATA = dict(model="conv6", width_mult=0.25, dataset="synthetic", synthetic_shape=(3, 32, 32),
            device="cpu", num_workers=0, schedule="constant")


def configs(size: int, batch: int) -> dict[str, TrialConfig]:
    steps = -(-size // batch)
    common = dict(DATA, synthetic_size=size, batch_size=batch, lr=0.1, init="kaiming_normal")
    return {
        "edgepopup": TrialConfig(method="edgepopup", **common),
        "edgepopup-raw": TrialConfig(method="edgepopup", score_abs=False, **common),
        "iterand": TrialConfig(method="iterand", rerand_every=steps, rerand_rate=0.1, **common),
        "biprop": TrialConfig(method="biprop", **common),
    }


def time_epoch(trial: Trial, epoch: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one training epoch."""
    t0, c0 = time.perf_counter(), time.process_time()
    trial.train_epoch(epoch, progress=False)
    return time.perf_counter() - t0, time.process_time() - c0


def time_redraw(trial: Trial, repeats: int) -> float:
    """Median seconds of one re-draw of every IteRand layer."""
    (hook,) = [h for h in trial.hooks if isinstance(h, Rerandomize)]
    due = 2 * hook.every - 2
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        hook.on_step_end(due)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def summary(times, base) -> dict[str, float]:
    """Medians of wall and CPU seconds and of their paired ratios to `base` (same rounds)."""
    med = statistics.median
    return {"epoch_s": med(w for w, _ in times), "epoch_cpu_s": med(c for _, c in times),
            "ratio_to_edgepopup": med(w / bw for (w, _), (bw, _) in zip(times, base)),
            "cpu_ratio_to_edgepopup": med(c / bc for (_, c), (_, bc) in zip(times, base))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=2048, help="synthetic training images")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    trials = {name: Trial(cfg, torch.device("cpu"))
              for name, cfg in configs(args.size, args.batch).items()}
    names = list(trials)
    for name in names:  # warm-up epoch: allocator, oneDNN kernels
        time_epoch(trials[name], 1)
    seconds: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            seconds[name].append(time_epoch(trials[name], r + 2))
    rows = {n: summary(s, seconds["edgepopup"]) for n, s in seconds.items()}
    step_s = rows["iterand"]["epoch_s"] / trials["iterand"].steps_per_epoch
    redraw = time_redraw(trials["iterand"], max(3, args.rounds))
    out = {"setup": {**{k: str(v) for k, v in DATA.items()}, "synthetic_size": args.size,
                     "batch_size": args.batch, "steps_per_epoch": trials["edgepopup"].steps_per_epoch,
                     "threads": args.threads, "rounds": args.rounds, "torch": torch.__version__},
           "methods": rows, "iterand_redraw_s": redraw, "iterand_redraw_per_step": redraw / step_s}
    for n, row in rows.items():
        print(f"{n:14s} wall {row['epoch_s']:7.3f} s/epoch x{row['ratio_to_edgepopup']:.3f}   "
              f"CPU {row['epoch_cpu_s']:7.3f} s/epoch x{row['cpu_ratio_to_edgepopup']:.3f}")
    print(f"one IteRand re-draw of every layer: {redraw * 1e3:.1f} ms "
          f"({out['iterand_redraw_per_step']:.2f} of a training step)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
