"""One trial: build data and model from a `TrialConfig`, train, validate every epoch, test once.

The same function runs in the foreground (`hiddenlab train`, `LocalReporter`) and under Ray Tune
(`hiddenlab.study.reporter`): all it knows of its surroundings is the `Reporter` protocol, which
hands it a checkpoint to resume from and takes each epoch's metrics, state and artifacts. All it
knows of the method is `cfg.method_spec` (models/selection/method.py): the model it builds and the
hooks it adds.

Per step, top to bottom: forward, loss, backward, optimiser step, schedule step, the method's
hooks. Per epoch: validation (after BatchNorm recalibration where the method trains on sampled
networks), metrics, checkpoint. At the end: the test set, once for the last network and once for
the best-validation one.

Determinism: the global RNG is re-seeded from (seed, epoch) at the start of every epoch and the
loaders' order is a function of (seed, epoch), so a trial resumed from any epoch's checkpoint
computes exactly what an uninterrupted one does.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from hiddenlab.config import ConfigError, TrialConfig
from hiddenlab.data import build_data
from hiddenlab.models import connections
from hiddenlab.models.selection import Hook, selection_layers
from hiddenlab.models.selection.kernels import tune_host_allocator


class TrialDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class Reporter(Protocol):
    progress: bool
    threads: int | None   # CPU threads this trial may use (None: every core)

    def load_state(self) -> dict | None: ...

    def report(self, metrics: dict, state: dict | None, artifacts: dict | None) -> None: ...


class LocalReporter:
    """Foreground trials: everything in one directory, checkpoint written atomically each epoch."""

    threads = None

    def __init__(self, out_dir: str | os.PathLike, progress: bool = True,
                 keep_epochs: tuple[int, ...] = (), config: dict | None = None):
        self.out = Path(out_dir)
        self.config = config  # written beside the first checkpoint, never before
        self.progress = progress
        self.keep_epochs = set(keep_epochs)

    def load_state(self) -> dict | None:
        path = self.out / "checkpoint.pt"
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # truncated or foreign file: say which, keep it for inspection
            raise ConfigError("out", f"{path} is not a readable checkpoint ({type(e).__name__}); "
                              "move it away to start the trial anew") from None

    def report(self, metrics: dict, state: dict | None, artifacts: dict | None) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        if self.config is not None and not (self.out / "config.json").exists():
            write_atomic(self.out / "config.json", json.dumps(self.config, indent=1))
        if state is not None:
            save_atomic(state, self.out / "checkpoint.pt")
            if metrics["epoch"] in self.keep_epochs:
                save_atomic(state, self.out / f"epoch_{metrics['epoch']}.pt")
            history = state["history"]
        else:
            history = [metrics]
        # Rewritten whole from the checkpoint's history: a kill between the two writes loses
        # nothing and a resume doubles nothing.
        write_atomic(self.out / "metrics.jsonl",
                     "".join(json.dumps(m, default=_json_default) + "\n" for m in history))
        for name, content in (artifacts or {}).items():
            write_atomic(self.out / name, content)


def save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_atomic(path: Path, content: str | bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(content if isinstance(content, bytes) else content.encode())
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o))


# --- set-up --------------------------------------------------------------------------------------
def resolve_device(cfg: TrialConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda was asked for but no CUDA device is visible")
    return torch.device(cfg.device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % 2**63


def use_threads(cfg: TrialConfig, reporter) -> int:
    """This trial's share of the cores: cfg.threads, else what the reporter was given (Ray's CPUs
    per trial), else every core."""
    n = cfg.threads or getattr(reporter, "threads", None) or os.cpu_count() or 1
    torch.set_num_threads(max(1, int(n)))
    return torch.get_num_threads()


class Trial:
    """A trial's live objects: data, model, optimiser, schedule, hooks; built once, then run one
    epoch at a time by `run_trial`."""

    def __init__(self, cfg: TrialConfig, device: torch.device, data=None):
        """`data`: loaders built already (a packed trial shares one data set between members);
        the network's draw does not depend on it."""
        self.cfg, self.device = cfg, device
        self.method = cfg.method_spec
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        seed_everything(cfg.seed)
        self.data = build_data(cfg, device) if data is None else data
        seed_everything(cfg.seed)  # the network's draw does not depend on how data was built
        model = self.method.build_model(cfg, self.data.input_shape, self.data.num_classes)
        self.model = model.to(device)
        if device.type == "cuda" and cfg.channels_last:
            to_channels_last(self.model)
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        self.optimizer = make_optimizer(cfg, [p for p in self.model.parameters()
                                              if p.requires_grad])
        self.steps_per_epoch = len(self.data.train)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(cfg, step / self.steps_per_epoch))
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.layers = selection_layers(self.model)
        self.total = connections(self.model)
        self.hooks: list[Hook] = list(self.method.hooks(self.model, cfg))
        if needs_recalibration(cfg, self.model):
            self.hooks.append(RecalibrateBN(self.model, self.data.train,
                                            cfg.recalibrate_batches))
        self.autocast = (torch.autocast(device.type, dtype=torch.bfloat16)
                         if cfg.precision == "bf16" else contextlib.nullcontext())

    def train_epoch(self, epoch: int, progress: bool) -> tuple[float, float]:
        """One pass over the training data; (mean loss, accuracy)."""
        torch.manual_seed(epoch_seed(self.cfg.seed, epoch))
        self.data.train.set_epoch(epoch)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen, first = 0, (epoch - 1) * self.steps_per_epoch
        bar = _progress(self.data.train, progress, f"epoch {epoch}/{self.cfg.epochs}")
        for i, (x, y) in enumerate(bar):
            with self.autocast:
                logits = self.forward(x)
                loss = self.criterion(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            for hook in self.hooks:
                hook.on_step_end(first + i)
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if i % 50 == 0 and not torch.isfinite(loss_sum):  # a sync every 50 steps only
                raise TrialDiverged(f"loss is {loss_sum.item()} at epoch {epoch}, step {i}")
        train_loss = float(loss_sum) / max(seen, 1)
        if not math.isfinite(train_loss):
            raise TrialDiverged(f"loss is {train_loss} at epoch {epoch}")
        return train_loss, float(correct) / max(seen, 1)

    def evaluate(self, loader) -> tuple[float, float]:
        for hook in self.hooks:
            hook.before_eval()
        return evaluate(self.forward, self.model, loader, self.criterion, self.autocast)


def run_trial(cfg: TrialConfig, reporter: Reporter) -> dict:
    """Train one trial to its last epoch (resuming from the reporter's checkpoint if it has one)
    and return the final metrics."""
    cfg = cfg.method_spec.prepare(cfg)
    use_threads(cfg, reporter)
    device = resolve_device(cfg)
    if device.type == "cpu":  # weight-sized temporaries reuse heap memory instead of faulting
        tune_host_allocator()
    t = Trial(cfg, device)
    record = Record(t, reporter.load_state())
    if record.done:
        return record.history[-1]

    metrics: dict = {}
    for epoch in range(record.start_epoch, cfg.epochs + 1):
        t0 = time.time()
        lr = t.optimizer.param_groups[0]["lr"]  # the epoch's starting lr
        train = t.train_epoch(epoch, reporter.progress)
        val = t.evaluate(t.data.val)
        metrics, state, artifacts = record.end_epoch(epoch, lr, train, val, t0)
        reporter.report(metrics, state, artifacts)
    return metrics


class Record:
    """What a trial carries from epoch to epoch besides its live objects: the metrics history,
    the best-validation network, the last selection (for flip rates) and the wall clock; built
    from the checkpoint to resume from (restoring model, optimiser and schedule), or fresh."""

    def __init__(self, t: Trial, state: dict | None):
        self.t = t
        self.start_epoch, self.history, self.best = 1, [], None
        self.previous = snapshot(t.layers) if t.method.selects else None
        if state is not None:
            t.model.load_state_dict(state["model"])
            t.optimizer.load_state_dict(state["optimizer"])
            t.scheduler.load_state_dict(state["scheduler"])
            self.start_epoch, self.history = state["epoch"] + 1, state["history"]
            self.previous, self.best = state.get("selection"), state.get("best")
        self.started = time.time() - (self.history[-1]["wall_time_s"] if self.history else 0.0)

    @property
    def done(self) -> bool:
        return bool(self.history and self.history[-1].get("done"))

    def end_epoch(self, epoch: int, lr: float, train: tuple[float, float],
                  val: tuple[float, float], t0: float) -> tuple[dict, dict, dict | None]:
        """The epoch's metrics (the test set on the last epoch), the checkpoint state and the
        artifacts, from its training and validation (loss, accuracy)."""
        t, cfg = self.t, self.t.cfg
        (train_loss, train_acc), (val_loss, val_acc) = train, val
        metrics = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                   "val_loss": val_loss, "val_acc": val_acc, "lr": lr, "params": t.total}
        self.previous = selection_metrics(t, metrics, self.previous)
        for hook in t.hooks:
            metrics.update(hook.on_epoch_end(epoch))
        best = self.best
        if best is None or val_acc > best["val_acc"]:
            best = self.best = {"epoch": epoch, "val_acc": val_acc, "model": _cpu_state(t.model)}
        artifacts = None
        if epoch == cfg.epochs:
            metrics.update(final_metrics(t, best))
            metrics["done"] = True
            artifacts = t.method.artifacts(t.model) if cfg.save_selection else None
        metrics["best_val_epoch"], metrics["best_val_acc"] = best["epoch"], best["val_acc"]
        metrics["epoch_time_s"] = time.time() - t0
        metrics["wall_time_s"] = time.time() - self.started
        metrics["eval_mode"] = cfg.eval_label
        self.history.append(metrics)
        state = {"config": cfg.to_dict(), "epoch": epoch, "model": t.model.state_dict(),
                 "optimizer": t.optimizer.state_dict(), "scheduler": t.scheduler.state_dict(),
                 "history": self.history, "selection": self.previous, "best": best}
        return metrics, state, artifacts


def selection_metrics(t: Trial, metrics: dict, previous) -> Any:
    """Flip rate (selections changed since the last epoch) and the fraction kept at evaluation;
    returns this epoch's selection snapshot."""
    if t.method.selects:
        current = snapshot(t.layers)
        metrics["flip_rate"], metrics["flip_rate_layers"] = flip_rates(previous, current)
        previous = current
    else:
        metrics["flip_rate"] = float("nan")
    kept = sum(layer.kept_count() for _, layer in t.layers)
    metrics["kept_fraction"] = kept / t.total
    metrics["subnet_params"] = kept
    return previous


def final_metrics(t: Trial, best: dict) -> dict:
    """The test set, once per reported network: the last epoch's and the best-validation one's
    (papers that select on validation report the latter)."""
    out = {}
    out["test_loss"], out["test_acc"] = t.evaluate(t.data.test)
    if best["epoch"] == t.cfg.epochs:
        out["best_val_test_acc"], out["best_val_test_loss"] = out["test_acc"], out["test_loss"]
        return out
    last = _cpu_state(t.model)
    t.model.load_state_dict(best["model"])
    loss, acc = evaluate(t.forward, t.model, t.data.test, t.criterion, t.autocast)
    out["best_val_test_acc"], out["best_val_test_loss"] = acc, loss
    t.model.load_state_dict(last)
    return out


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# --- BatchNorm recalibration ------------------------------------------------------------------------
def needs_recalibration(cfg: TrialConfig, model: nn.Module) -> bool:
    """Where training runs sampled networks (Zhou, slot-ps) and evaluation a deterministic one,
    the running statistics describe networks that evaluation never runs."""
    return (cfg.recalibrate_bn and cfg.method_spec.samples_in_training and
            cfg.eval_label != "sample" and
            any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()))


class RecalibrateBN(Hook):
    """Before every evaluation: reset the running statistics and re-estimate them (cumulative
    average) on the evaluation network over `batches` training batches. Only BatchNorm buffers
    change; the loader's epoch and the global RNG are left as they were."""

    def __init__(self, model: nn.Module, loader, batches: int):
        self.model, self.loader, self.batches = model, loader, batches
        self.bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    @torch.no_grad()
    def before_eval(self) -> None:
        was_training, epoch = self.model.training, self.loader.epoch
        momenta = [bn.momentum for bn in self.bns]
        self.model.eval()
        for bn in self.bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average: every batch counts the same
            bn.train()
        self.loader.set_epoch(0)
        for i, (x, _) in enumerate(self.loader):
            if i >= self.batches:
                break
            self.model(x)
        for bn, m in zip(self.bns, momenta):
            bn.momentum = m
        self.loader.set_epoch(epoch)
        self.model.train(was_training)


# --- pieces ------------------------------------------------------------------------------------------
def to_channels_last(model: nn.Module) -> None:
    """Channels-last for every 4-D weight and buffer. Not `model.to(memory_format=...)`: that
    raises on slot machines' 5-D (out, in, kh, kw, K) values."""
    for t in (*model.parameters(), *model.buffers()):
        if t.dim() == 4:
            t.data = t.data.contiguous(memory_format=torch.channels_last)


def make_optimizer(cfg: TrialConfig, params) -> torch.optim.Optimizer:
    # fused: one kernel over all tensors instead of a Python loop per tensor (4-5x faster on
    # CPU for slot machines' K x scores), where this torch build supports it.
    fused = {"fused": True} if _fused_ok(params) else {}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, nesterov=cfg.nesterov, **fused)
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.momentum, 0.999),
                            weight_decay=cfg.weight_decay, **fused)


def _fused_ok(params) -> bool:
    return all(p.dtype in (torch.float32, torch.float16, torch.bfloat16) and
               p.device.type in ("cpu", "cuda") for p in params)


def lr_factor(cfg: TrialConfig, epoch: float) -> float:
    """Multiplier on cfg.lr at a fractional epoch."""
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "multistep":
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if cfg.schedule == "cosine":
        if epoch < cfg.warmup_epochs:
            return (epoch + 1e-8) / cfg.warmup_epochs
        span = max(cfg.epochs - cfg.warmup_epochs, 1e-8)
        return 0.5 * (1 + math.cos(math.pi * min((epoch - cfg.warmup_epochs) / span, 1.0)))
    # sgdr: cosine decay restarting at each epoch in cfg.restarts (Loshchilov & Hutter)
    bounds = [0, *cfg.restarts, cfg.epochs]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if epoch < hi:
            return 0.5 * (1 + math.cos(math.pi * (epoch - lo) / (hi - lo)))
    return 0.5 * (1 + math.cos(math.pi))


@torch.no_grad()
def evaluate(forward, model: nn.Module, loader, criterion, autocast) -> tuple[float, float]:
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y in loader:
        with autocast:
            logits = forward(x)
        loss_sum += float(criterion(logits.float(), y)) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


@torch.no_grad()
def snapshot(layers) -> dict[str, torch.Tensor]:
    out = {}
    for name, layer in layers:
        sel = layer.selection()
        if sel is not None:
            out[name] = sel.to("cpu", torch.uint8 if sel.dtype == torch.bool or
                               getattr(layer, "K", 2**16) <= 256 else sel.dtype)
    return out


def flip_rates(previous, current) -> tuple[float, dict[str, float]]:
    per_layer, flips, total = {}, 0, 0
    for name, sel in current.items():
        changed = int((sel != previous[name]).sum()) if previous and name in previous else 0
        per_layer[name] = changed / sel.numel()
        flips, total = flips + changed, total + sel.numel()
    return (flips / total if total else float("nan")), per_layer


def _progress(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)
