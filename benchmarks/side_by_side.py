"""Two foreground trials side by side vs one alone (issue 13): the cost of sharing the cores.

Each round runs `hiddenlab train` (the same small trial, its own --out) once alone, then twice at
once, as separate processes, under each thread setting:

* `share`: the default, each trial's share of the cores (hiddenlab.study.cores);
* `all`: `--threads <every core>` for each trial: what every trial did before the share.

Reported per setting: the median epoch time (epochs 2.., from metrics.jsonl) alone and side by
side, and their ratio (2.0 = two trials take twice as long as one: the cores are shared without
loss). Rounds interleave the settings so a change in the machine's load hits them alike. Not a
test: run by hand (a few minutes on 2 cores).

    python benchmarks/side_by_side.py                  # fc on digits, 2 rounds
    python benchmarks/side_by_side.py --model conv2 --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def trial_args(model: str, epochs: int) -> list[str]:
    width = "1" if model == "fc" else "0.25"
    return ["train", "--method", "slot-gs", "--K", "8", "--model", model, "--width-mult", width,
            "--dataset", "digits", "--epochs", str(epochs), "--batch-size", "64",
            "--num-workers", "0", "--device", "cpu", "--no-progress", "--no-save-selection"]


def start(args: list[str], out: Path, threads: int | None) -> subprocess.Popen:
    extra = ["--threads", str(threads)] if threads else []
    return subprocess.Popen([sys.executable, "-m", "hiddenlab", *args, *extra, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def epoch_time(out: Path) -> float:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["epoch_time_s"] for r in rows[1:])   # epoch 1 warms up


def run(args: list[str], n: int, threads: int | None, root: Path) -> list[float]:
    """n trials started together; each one's median epoch time."""
    outs = [Path(tempfile.mkdtemp(dir=root)) / "run" for _ in range(n)]
    procs = [start(args, out, threads) for out in outs]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"trial failed ({p.returncode}):\n{err[-2000:]}")
    return [epoch_time(out) for out in outs]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="fc", choices=["fc", "conv2"])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    from hiddenlab.study.cores import machine_cores

    cores = machine_cores()
    args = trial_args(a.model, a.epochs)
    settings = {"share": None, "all": cores}
    times: dict[str, dict[str, list[float]]] = {s: {"alone": [], "side": []} for s in settings}
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as d:
        for r in range(a.rounds):
            for name, threads in settings.items():
                t0 = time.time()
                times[name]["alone"] += run(args, 1, threads, Path(d))
                times[name]["side"] += run(args, 2, threads, Path(d))
                print(f"round {r + 1} {name}: alone {times[name]['alone'][-1]:.3f} s/epoch, "
                      f"side by side {times[name]['side'][-2]:.3f} / "
                      f"{times[name]['side'][-1]:.3f} s/epoch ({time.time() - t0:.0f} s)",
                      flush=True)
    report = {"model": a.model, "cores": cores, "load_before": os.getloadavg()[0]}
    for name in settings:
        alone, side = statistics.median(times[name]["alone"]), statistics.median(times[name]["side"])
        report[name] = {"alone_s": round(alone, 4), "side_by_side_s": round(side, 4),
                        "ratio": round(side / alone, 2)}
        print(f"{name:6} threads: alone {alone:.3f} s/epoch, side by side {side:.3f} s/epoch, "
              f"ratio {side / alone:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
