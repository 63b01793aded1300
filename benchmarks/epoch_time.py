"""Epoch time of every selection method against dense training in the trainer's real loop.

The headline numbers come from `hiddenlab.study.trainer.run_trial` itself, driven through its
public API (TrialConfig, run_trial, a Reporter): one epoch is everything the trainer does for it
(batches from the loader, forward, backward, optimiser and scheduler steps, validation, flip
rates and kept counts, on the last epoch the test set and the selection histograms) plus the
reporter writing the checkpoint and metrics (a `LocalReporter` in a temporary directory). Its
time is the trainer's own `epoch_time_s` plus the time the reporter took.

Side by side: every trial of a model runs in its own thread and the threads take turns, one
epoch each (a baton handed on in `Reporter.report`), so only one trial computes at any time and
round r is epoch r of every method, back to back. Slow drift of a shared machine hits every
method alike; `ratio_to_dense` is the median over rounds of this method's epoch / dense's epoch
in the same round (the first round, with its warm-up, is left out of the medians unless it is
the only one).

The breakdown (`--breakdown`) replays the same epoch with the trainer's public pieces (the
loader, the model, `make_optimizer`, `lr_factor`, `evaluate`, `snapshot`, `flip_rates`,
`kept_count`, `selection_histograms`, `LocalReporter`) and a clock around each: data, forward,
backward, optimiser step, evaluation, per-epoch metrics, histograms, checkpoint; inside forward
and backward, the selection kernels (every layer's effective weight, and the backward from it to
the scores, timed by tensor hooks). `--profile` adds torch.profiler's top operators of the first
(warm-up) epoch, which the medians leave out. These replays interleave the same way (one epoch per method per round).

`--propose` prototypes trainer-side changes (docs/performance.md) without editing the trainer:
`allocator` calls `kernels.tune_host_allocator()` before the trials (what run_trial would do at
its start on the CPU); `factored` registers `slot.attach` as the slot methods' attach hook (what
the method registry would do), so SGD slot trials train factored scores.

CPU: one torch thread by default (`--threads`): with two, OpenMP threads of a step wait on each
other whenever another job holds a core, which on a shared 2-core machine swamps what is measured.

    python benchmarks/epoch_time.py --json epoch_time.json
    python benchmarks/epoch_time.py --models lenet-300-100 --methods dense slot-gs --rounds 5
    python benchmarks/epoch_time.py --models conv6 --conv-size 1024 --breakdown --profile
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import torch

from hiddenlab.config import TrialConfig
from hiddenlab.study.trainer import (LocalReporter, Trial, epoch_seed, final_metrics, run_trial,
                                     selection_metrics, snapshot)

METHODS = ["dense", "edgepopup", "supermask", "slot-gs", "slot-ps"]
MODELS = ["lenet-300-100", "fc-digits", "conv4", "conv6"]
PHASES = ["data", "forward", "backward", "optimizer", "evaluation", "metrics", "histograms",
          "checkpoint", "other"]  # other: the loop's own loss / accuracy sums


# --- what is run -------------------------------------------------------------------------------
def model_fields(name: str, args) -> dict:
    """TrialConfig fields of one benchmark model: network, data set, batch."""
    if name == "lenet-300-100":  # MNIST-sized: 60,000 training images of 1x28x28
        return dict(model="lenet-300-100", dataset="synthetic", synthetic_shape=(1, 28, 28),
                    synthetic_size=args.lenet_size)
    if name == "fc-digits":  # the quickstart's FC on the real 8x8 digits, its batch of 64
        return dict(model="fc", dataset="digits", batch_size=64)
    if name in ("conv4", "conv6"):
        return dict(model=name, dataset="synthetic", synthetic_shape=(3, 32, 32),
                    synthetic_size=args.conv_size)
    raise SystemExit(f"unknown model {name!r}; one of {', '.join(MODELS)}")


def trial_config(model: str, method: str, args, epochs: int) -> TrialConfig:
    kw = model_fields(model, args)
    if method.startswith("slot"):
        kw["K"] = args.K
    return TrialConfig(method=method, device="cpu", seed=args.seed, epochs=epochs,
                       num_workers=0, **kw)


# --- the headline: run_trial, one epoch per method per round --------------------------------------
class Baton:
    """Turn-taking between trial threads: exactly one holds the baton and computes."""

    def __init__(self, names: list[str]):
        self.active = list(names)
        self.turn = 0
        self.cv = threading.Condition()

    def wait(self, name: str) -> None:
        with self.cv:
            self.cv.wait_for(lambda: self.active and self.active[self.turn] == name)

    def pass_on(self, name: str, leaving: bool = False) -> None:
        with self.cv:
            i = self.active.index(name)
            if leaving:
                self.active.pop(i)
                self.turn = i % len(self.active) if self.active else 0
            else:
                self.turn = (i + 1) % len(self.active)
            self.cv.notify_all()


class BatonReporter(LocalReporter):
    """A LocalReporter (checkpoint.pt, metrics.jsonl, artifacts in a temporary directory) that
    times its own writing, records each epoch, then hands the baton on and waits for its turn."""

    def __init__(self, out_dir: Path, name: str, baton: Baton, threads: int | None):
        super().__init__(out_dir, progress=False)
        self.name, self.baton = name, baton
        self.threads = threads  # run_trial sets torch's threads from it
        self.epochs: list[dict] = []

    def load_state(self):
        return None  # always a fresh trial

    def report(self, metrics, state, artifacts):
        t0 = time.perf_counter()
        super().report(metrics, state, artifacts)
        write_s = time.perf_counter() - t0
        self.epochs.append({"epoch": metrics["epoch"], "trainer_epoch_s": metrics["epoch_time_s"],
                            "checkpoint_s": write_s,
                            "epoch_s": metrics["epoch_time_s"] + write_s})
        self.baton.pass_on(self.name)
        self.baton.wait(self.name)


def run_side_by_side(model: str, methods: list[str], args) -> dict[str, list[dict]]:
    """Every method's trial of `model` in its own thread, one epoch at a time in turn."""
    epochs = args.rounds
    baton = Baton(methods)
    errors: dict[str, BaseException] = {}
    reporters: dict[str, BatonReporter] = {}
    with tempfile.TemporaryDirectory(prefix="epoch_time_") as tmp:
        def trial(method: str) -> None:
            reporter = reporters[method]
            baton.wait(method)
            try:
                run_trial(trial_config(model, method, args, epochs), reporter)
            except BaseException as e:  # reported, and the other trials go on
                errors[method] = e
            finally:
                baton.pass_on(method, leaving=True)

        for m in methods:
            reporters[m] = BatonReporter(Path(tmp) / m, m, baton, args.threads or None)
        threads = [threading.Thread(target=trial, args=(m,), daemon=True) for m in methods]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for m, e in errors.items():
        print(f"  {model}/{m} failed: {type(e).__name__}: {e}", file=sys.stderr)
    return {m: reporters[m].epochs for m in methods if m not in errors}


def summarise(model: str, epochs: dict[str, list[dict]]) -> list[dict]:
    rows = []
    dense = epochs.get("dense")
    for method, eps in epochs.items():
        times = [e["epoch_s"] for e in eps]
        counted = slice(1, None) if len(times) > 1 else slice(None)
        row = {"model": model, "method": method, "epoch_s": times,
               "checkpoint_s": [e["checkpoint_s"] for e in eps],
               "median_epoch_s": statistics.median(times[counted])}
        if dense is not None:
            ratios = [t / d["epoch_s"] for t, d in zip(times, dense)]
            row["ratios"] = ratios
            row["ratio_to_dense"] = statistics.median(ratios[counted])
        rows.append(row)
    return rows


# --- the breakdown: the same epoch from the trainer's public pieces -------------------------------
class SelectionClock:
    """Times every selection layer's effective weight (forward) and the backward from it to the
    scores (a hook on the effective weight's gradient starts the clock, one on the scores' grad
    accumulation stops it; on the CPU autograd runs them back to back)."""

    def __init__(self, layers):
        self.forward_s = 0.0
        self.backward_s = 0.0
        self._started: dict[int, float] = {}
        for _, layer in layers:
            trainable = [p for n, p in layer.named_parameters(recurse=False)
                         if p.requires_grad and n != "weight"]
            if not trainable:
                continue  # learned dense weights: no selection work
            self._wrap(layer)
            for p in trainable:
                p.register_post_accumulate_grad_hook(self._stop(id(layer)))

    def _wrap(self, layer) -> None:
        original = layer.effective_weight  # the bound method; the instance attribute shadows it

        def timed():
            t0 = time.perf_counter()
            w = original()
            self.forward_s += time.perf_counter() - t0
            if w.requires_grad and layer.training:
                w.register_hook(self._start(id(layer)))
            return w

        layer.effective_weight = timed

    def _start(self, key):
        def hook(grad):
            self._started[key] = time.perf_counter()
        return hook

    def _stop(self, key):
        def hook(param):
            started = self._started.pop(key, None)
            if started is not None:
                self.backward_s += time.perf_counter() - started
        return hook


def breakdown_trial(model_name: str, method: str, args, epochs: int, profile: bool):
    """A generator: yields one dict of phase seconds per epoch, computing what run_trial's epoch
    computes (through the trainer's `Trial`, its hooks and metric functions), phase by phase."""
    cfg = trial_config(model_name, method, args, epochs)
    cfg = cfg.method_spec.prepare(cfg)
    t = Trial(cfg, torch.device("cpu"))
    clock = SelectionClock(t.layers)
    previous = snapshot(t.layers) if t.method.selects else None
    history: list[dict] = []
    best = {"epoch": 0, "val_acc": -1.0, "model": None}
    with tempfile.TemporaryDirectory(prefix="epoch_breakdown_") as tmp:
        reporter = LocalReporter(tmp, progress=False)
        for epoch in range(1, epochs + 1):
            prof = (torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                    if profile and epoch == 1 else contextlib.nullcontext())
            times = defaultdict(float)
            fwd0, bwd0 = clock.forward_s, clock.backward_s
            start = time.perf_counter()
            with prof:
                _train_epoch_timed(t, epoch, times)
                t0 = time.perf_counter()
                val_loss, val_acc = t.evaluate(t.data.val)
                t1 = time.perf_counter()
                metrics = {"epoch": epoch, "val_loss": val_loss, "val_acc": val_acc}
                previous = selection_metrics(t, metrics, previous)
                for hook in t.hooks:
                    metrics.update(hook.on_epoch_end(epoch))
                t2 = time.perf_counter()
                artifacts = None
                if epoch == epochs:  # the trainer tests once, and writes the histograms
                    best = {"epoch": epoch, "val_acc": val_acc, "model": None}
                    metrics.update(final_metrics(t, best))
                    t1 += time.perf_counter() - t2  # the test set counts as evaluation
                    t2 = time.perf_counter()
                    artifacts = t.method.artifacts(t.model) if cfg.save_selection else None
                t3 = time.perf_counter()
                history.append(metrics)
                state = {"config": cfg.to_dict(), "epoch": epoch, "model": t.model.state_dict(),
                         "optimizer": t.optimizer.state_dict(),
                         "scheduler": t.scheduler.state_dict(), "history": history,
                         "selection": previous}
                reporter.report(metrics, state, artifacts)
                t4 = time.perf_counter()
            times["evaluation"] += t1 - t0
            times["metrics"] += t2 - t1
            times["histograms"] += t3 - t2
            times["checkpoint"] += t4 - t3
            total = time.perf_counter() - start
            times["other"] = total - sum(times[p] for p in PHASES if p != "other")
            out = {p: times[p] for p in PHASES}
            out["total"] = total
            out["selection_forward"] = clock.forward_s - fwd0
            out["selection_backward"] = clock.backward_s - bwd0
            if profile and epoch == 1:
                out["top_ops"] = top_ops(prof, args.profile_rows)
            yield out


def _train_epoch_timed(t, epoch: int, times: dict) -> None:
    """`Trial.train_epoch` with a clock around data, forward, backward and optimiser step (the
    per-step hooks count as optimiser step)."""
    torch.manual_seed(epoch_seed(t.cfg.seed, epoch))
    t.data.train.set_epoch(epoch)
    t.model.train()
    loss_sum, correct, seen = torch.zeros(()), torch.zeros((), dtype=torch.long), 0
    first = (epoch - 1) * t.steps_per_epoch
    batches = iter(t.data.train)
    for i in range(t.steps_per_epoch + 1):
        t0 = time.perf_counter()
        batch = next(batches, None)
        t1 = time.perf_counter()
        times["data"] += t1 - t0
        if batch is None:
            break
        x, y = batch
        with t.autocast:
            logits = t.forward(x)
            loss = t.criterion(logits.float(), y)
        t2 = time.perf_counter()
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        t.optimizer.step()
        t.scheduler.step()
        for hook in t.hooks:
            hook.on_step_end(first + i)
        t4 = time.perf_counter()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        times["forward"] += t2 - t1
        times["backward"] += t3 - t2
        times["optimizer"] += t4 - t3


def top_ops(prof, rows: int) -> list[dict]:
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    return [{"op": e.key, "self_s": e.self_cpu_time_total / 1e6, "calls": e.count}
            for e in ops[:rows]]


def run_breakdown(model: str, methods: list[str], args) -> list[dict]:
    """Each method's breakdown epochs, interleaved one epoch per method per round; the last
    round's numbers (the first is warm-up) and the excess over dense, phase by phase."""
    epochs = max(args.breakdown_epochs, 1)
    gens = {m: breakdown_trial(model, m, args, epochs, args.profile) for m in methods}
    per = {m: [] for m in methods}
    for _ in range(epochs):
        for m in methods:
            per[m].append(next(gens[m]))
    rows = []
    for m in methods:
        median = {k: statistics.median(e[k] for e in per[m][1:] or per[m])
                  for k in per[m][-1] if k != "top_ops"}
        row = {"model": model, "method": m, "phase_s": median}
        if "top_ops" in per[m][0]:
            row["top_ops"] = per[m][0]["top_ops"]
        rows.append(row)
    dense = next((r for r in rows if r["method"] == "dense"), None)
    if dense is not None:
        for r in rows:
            r["excess_over_dense_s"] = {k: r["phase_s"][k] - dense["phase_s"].get(k, 0.0)
                                        for k in r["phase_s"]}
    return rows


# --- output ------------------------------------------------------------------------------------
def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "load_avg": os.getloadavg()}


def print_headline(rows: list[dict]) -> None:
    print(f"{'model':15s} {'method':10s} {'median s':>9s} {'vs dense':>9s}  epochs (s)")
    for r in rows:
        ratio = f"{r['ratio_to_dense']:.2f}x" if "ratio_to_dense" in r else ""
        eps = " ".join(f"{t:.3f}" for t in r["epoch_s"])
        print(f"{r['model']:15s} {r['method']:10s} {r['median_epoch_s']:9.3f} {ratio:>9s}  {eps}")


def print_breakdown(rows: list[dict]) -> None:
    keys = PHASES + ["total", "selection_forward", "selection_backward"]
    print(f"{'model':15s} {'method':10s} " + " ".join(f"{k[:9]:>9s}" for k in keys))
    for r in rows:
        print(f"{r['model']:15s} {r['method']:10s} " +
              " ".join(f"{r['phase_s'][k]:9.3f}" for k in keys))


def apply_proposals(proposals: list[str]) -> None:
    """Prototype trainer-side changes in this process (see the module docstring)."""
    if "allocator" in proposals:
        from hiddenlab.models.selection.kernels import tune_host_allocator

        print(f"tune_host_allocator(): {tune_host_allocator()}")
    if "factored" in proposals:

        from hiddenlab.models.selection import slot

        # the slot methods' attach hook, as the plug-in would declare it (docs/performance.md)
        original = slot.SlotMethod.attach

        def attach(self, model, cfg):
            original(self, model, cfg)
            slot.attach(model, cfg)

        slot.SlotMethod.attach = attach


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    p.add_argument("--rounds", type=int, default=4,
                   help="epochs per trial = interleaved rounds (the first is warm-up)")
    p.add_argument("--K", type=int, default=8, help="slot machines' values per connection")
    p.add_argument("--lenet-size", type=int, default=60_000, help="LeNet's training images")
    p.add_argument("--conv-size", type=int, default=1024, help="Conv4/Conv6 training images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: leave as is)")
    p.add_argument("--no-headline", action="store_true", help="skip the run_trial rounds")
    p.add_argument("--breakdown", action="store_true", help="also the phase breakdown")
    p.add_argument("--breakdown-epochs", type=int, default=2)
    p.add_argument("--profile", action="store_true",
                   help="torch.profiler's top operators of the first (warm-up) breakdown epoch")
    p.add_argument("--profile-rows", type=int, default=15)
    p.add_argument("--propose", nargs="*", default=[], choices=["allocator", "factored"],
                   help="prototype trainer-side proposals (module docstring)")
    p.add_argument("--json", type=Path, help="write every number here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    apply_proposals(args.propose)
    if "dense" not in args.methods:
        args.methods = ["dense", *args.methods]  # the ratios need it
    out = {"machine": machine(), "args": {k: str(v) if isinstance(v, Path) else v
                                          for k, v in vars(args).items()},
           "headline": [], "breakdown": []}
    for model in args.models:
        if not args.no_headline:
            print(f"== {model}: run_trial, {args.rounds} interleaved rounds", flush=True)
            rows = summarise(model, run_side_by_side(model, args.methods, args))
            print_headline(rows)
            out["headline"] += rows
        if args.breakdown:
            print(f"== {model}: breakdown (s per epoch)", flush=True)
            rows = run_breakdown(model, args.methods, args)
            print_breakdown(rows)
            out["breakdown"] += rows
        if args.json:
            out["machine"]["load_avg_end"] = os.getloadavg()
            args.json.write_text(json.dumps(out, indent=1, default=_plain))
    return 0


def _plain(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    raise TypeError(type(o))


if __name__ == "__main__":
    sys.exit(main())
