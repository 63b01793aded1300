"""What a study will cost before it runs: trial-epochs, and seconds per epoch per device kind.

Seconds per epoch come from earlier results in the storage (every `<study>/results.parquet`
there: the per-epoch `epoch_time_s` of trials of the same method and model, per `device_kind`;
trials of the same size first), else from a short calibration on this machine: the trial's network
trained for a few steps on stand-in data of its input shape (no data set needed), scaled to the
steps of a real epoch plus its validation pass. Sampled series count `num_samples` draws per grid
point; a scheduler that stops trials early makes the estimate an upper bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from hiddenlab.config import DATASETS

# Training images of the data sets whose files may be absent when a study is planned.
TRAIN_IMAGES = {"mnist": 60_000, "fashion-mnist": 60_000, "cifar10": 50_000, "cifar100": 50_000,
                "imagenet": 1_281_167}
SHAPE = ("method", "model", "dataset", "width_mult", "depth", "subset", "batch_size")
CALIBRATION_STEPS = 2     # measured training steps (after as many to warm up)


@dataclass
class Work:
    """Trials that share one shape: their config (one of them), how many, their epochs."""

    cfg: Any
    trials: int

    @property
    def epochs(self) -> int:
        return self.trials * self.cfg.epochs

    @property
    def shape(self) -> tuple:
        return shape_of(self.cfg.to_dict())


@dataclass
class KindEstimate:
    kind: str
    seconds: float = 0.0                 # serial: every covered trial-epoch one after another
    epochs_covered: int = 0
    sources: list[str] = field(default_factory=list)


def shape_of(d: dict) -> tuple:
    return tuple(d.get(k) for k in SHAPE)


def work_of(plan) -> list[Work]:
    """The plan's trials grouped by shape (sampled series: their probe config x their count)."""
    groups: dict[tuple, Work] = {}
    items = [(t.cfg, 1) for t in plan.trials] + \
        [(s.probe, s.count(plan.num_samples)) for s in plan.sampled]
    for cfg, n in items:
        key = (shape_of(cfg.to_dict()), cfg.epochs)
        if key in groups:
            groups[key].trials += n
        else:
            groups[key] = Work(cfg, n)
    return list(groups.values())


# --- earlier results -----------------------------------------------------------------------------
def earlier_epoch_times(storage) -> "Any":
    """Per-epoch rows (method, model, shape fields, device_kind, epoch_time_s) of every study in
    the storage; None when there are none."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    frames = []
    for name in storage.listdir():
        if not storage.exists(name, "results.parquet"):
            continue
        cols = [*SHAPE, "device_kind", "epoch_time_s"]
        tab = pq.read_table(pa.BufferReader(storage.read_bytes(name, "results.parquet")))
        present = [c for c in cols if c in tab.column_names]
        if "epoch_time_s" not in present:
            continue
        frames.append(tab.select(present).to_pandas())
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    df = df[df.epoch_time_s.notna()]
    if "device_kind" not in df.columns:
        df["device_kind"] = None
    df["device_kind"] = df.device_kind.fillna("unknown device")
    return df if len(df) else None


def _match(df, work: Work):
    """Rows of the same shape, else of the same method and model; (rows, how matched)."""
    d = work.cfg.to_dict()
    same = df
    for k in SHAPE:
        if k in df.columns:
            v = d.get(k)
            same = same[same[k].isna()] if v is None else same[same[k] == v]
    if len(same):
        return same, "same size"
    loose = df[(df.method == d["method"]) & (df.model == d["model"])]
    return loose, "same method and model, other sizes"


# --- calibration ---------------------------------------------------------------------------------
def train_images(cfg) -> int | None:
    """Training images per epoch (after the validation split), without loading the data."""
    from hiddenlab.data.datasets import resolve_root

    if cfg.dataset == "synthetic":
        total = cfg.synthetic_size
    else:
        spec = DATASETS.get(cfg.dataset)
        root = resolve_root(cfg.data_root)
        total = None
        try:
            if all(p.exists() for p in spec.files(root)):   # never a download attempt
                total = spec.size(cfg, root, "train")
        except Exception:
            total = None
        total = total or TRAIN_IMAGES.get(cfg.dataset)   # files absent: the published size
        if total is None:
            return None
        val = cfg.val_size if cfg.val_size is not None else spec.default_val_size(cfg)
        total -= int(val)
    return min(total, cfg.subset) if cfg.subset else total


def _val_images(cfg, train: int) -> int:

    if cfg.dataset == "synthetic":
        return max(cfg.synthetic_size // 4, 1)
    if cfg.val_size is not None:
        return cfg.val_size
    return int(DATASETS.get(cfg.dataset).default_val_size(cfg))


def calibrate(cfg, threads: int = 1) -> float | None:
    """Seconds per epoch of `cfg` on this machine: a few training steps at its batch size (after
    as many to warm up) and an evaluation pass of its network on stand-in data of its input
    shape, scaled to the steps of a real epoch (per step: selection costs are per step, not per
    image) and the images of its validation set. None where the trial cannot be built here."""
    import torch

    from hiddenlab.study.trainer import Trial, resolve_device

    n_train = train_images(cfg)
    if not n_train:
        return None
    try:
        spec = DATASETS.get(cfg.dataset)
        probe = _trained_alike(cfg)
        shape = tuple(spec.input_shape(cfg)) if cfg.dataset != "synthetic" else \
            tuple(cfg.synthetic_shape)
        classes = spec.num_classes(cfg) if cfg.dataset != "synthetic" else cfg.synthetic_classes
    except Exception:
        return None
    batch = cfg.batch_size
    size = batch * CALIBRATION_STEPS
    saved = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        stand_in = probe.replace(dataset="synthetic", synthetic_shape=shape,
                                 synthetic_classes=max(int(classes), 2), synthetic_size=size,
                                 subset=None, val_size=None, eval_batch_size=batch,
                                 loader="auto", num_workers=0,
                                 epochs=max(probe.epochs, 2), keep_epochs=())
        trial = Trial(stand_in, resolve_device(stand_in))
        trial.train_epoch(1, False)                       # warm-up
        t0 = time.perf_counter()
        trial.train_epoch(2, False)
        per_step = (time.perf_counter() - t0) / CALIBRATION_STEPS
        t0 = time.perf_counter()
        trial.evaluate(trial.data.val)
        per_image_eval = (time.perf_counter() - t0) / max(size // 4, 1)
    except Exception:   # a trial this machine cannot build: no estimate rather than a guess
        return None
    finally:
        torch.set_num_threads(saved)
    steps = -(-n_train // batch)
    return per_step * steps + per_image_eval * _val_images(cfg, n_train)


def _trained_alike(cfg):
    """A selection-free stand-in for a child (finetune) trial: the same network trained densely,
    since its parent's checkpoint may not exist yet."""
    if cfg.method_spec.name != "finetune":
        return cfg
    return cfg.replace(method="dense", epochs=cfg.epochs)


def this_device_kind(cfg) -> str:
    from hiddenlab.study.reporter import device_kind

    return device_kind(cfg)


# --- the estimate --------------------------------------------------------------------------------
def estimate(plan, storage, calibrate_here: bool = True, budget_s: float = 60.0,
             threads: int = 1) -> tuple[int, list[KindEstimate], list[str]]:
    """(trial-epochs, per device kind: serial seconds for the epochs it covers, notes)."""
    works = work_of(plan)
    total = sum(w.epochs for w in works)
    df = earlier_epoch_times(storage) if storage is not None else None
    kinds: dict[str, KindEstimate] = {}
    notes: list[str] = []
    uncovered: list[Work] = []
    for w in works:
        rows, how = _match(df, w) if df is not None else (None, "")
        if rows is None or not len(rows):
            uncovered.append(w)
            continue
        for kind, g in rows.groupby("device_kind"):
            k = kinds.setdefault(kind, KindEstimate(kind))
            per_epoch = float(g.epoch_time_s.median())
            k.seconds += per_epoch * w.epochs
            k.epochs_covered += w.epochs
            k.sources.append(f"{w.cfg.method}/{w.cfg.model}: {per_epoch:.3g} s/epoch from "
                             f"{len(g)} earlier epochs ({how})")
    if uncovered and calibrate_here:
        here = this_device_kind(uncovered[0].cfg)
        k = kinds.setdefault(here, KindEstimate(here))
        spent = time.time()
        late: list[str] = []
        for w in uncovered:
            if time.time() - spent > budget_s:
                late.append(f"{w.cfg.method}/{w.cfg.model}")
                continue
            per_epoch = calibrate(w.cfg, threads)
            if per_epoch is None:
                notes.append(f"{w.cfg.method}/{w.cfg.model} ({w.cfg.dataset}): cannot be "
                             "measured here")
                continue
            k.seconds += per_epoch * w.epochs
            k.epochs_covered += w.epochs
            k.sources.append(f"{w.cfg.method}/{w.cfg.model}: {per_epoch:.3g} s/epoch "
                             "measured here")
        if late:
            notes.append(f"calibration budget ({budget_s:.0f} s) spent; not measured: "
                         f"{', '.join(sorted(set(late)))} (--calibration-budget)")
    elif uncovered:
        notes.append(f"{sum(w.epochs for w in uncovered)} trial-epochs have no earlier results "
                     "(calibration off)")
    return total, [k for k in kinds.values() if k.epochs_covered], notes


def concurrency(kind: str, opts) -> int:
    """Trials at once on one machine of this kind: --max-concurrent, else what the per-trial
    resources allow (this machine's cores for CPU trials, GPU fractions for GPU trials)."""
    import os

    if opts.max_concurrent:
        return int(opts.max_concurrent)
    if kind.startswith("cuda") and opts.gpus_per_trial > 0:
        return max(1, int(1 / opts.gpus_per_trial)) if opts.gpus_per_trial <= 1 else 1
    cores = opts.num_cpus or os.cpu_count() or 1
    return max(1, int(cores // max(opts.cpus_per_trial, 1e-9)))


def describe(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def lines(total: int, kinds: Iterable[KindEstimate], notes: list[str], opts,
          stops_early: bool) -> list[str]:
    out = [f"estimate: {total} trial-epochs" + (" at most (the scheduler stops trials early)"
                                                 if stops_early else "")]
    for k in kinds:
        c = concurrency(k.kind, opts)
        share = "" if k.epochs_covered == total else \
            f" (covers {k.epochs_covered}/{total} trial-epochs)"
        out.append(f"  {k.kind}: {describe(k.seconds)} of trial time, about "
                   f"{describe(k.seconds / c)} wall with {c} trial(s) at once{share}")
        for src in k.sources[:8]:
            out.append(f"      {src}")
        if len(k.sources) > 8:
            out.append(f"      ... and {len(k.sources) - 8} more")
    if not list(kinds):
        out.append("  no estimate: no earlier results and nothing measurable here")
    else:
        out.append("  (epochs only: Ray's start-up and each trial's set-up, a few seconds each "
                   "on a small machine, come on top)")
    for n in notes:
        out.append(f"  note: {n}")
    return out

