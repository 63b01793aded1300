"""One trial: build data and model from a `TrialConfig`, train, validate every epoch, test once.

The same function runs in the foreground (`hiddenlab train`, `LocalReporter`) and under Ray Tune
(`hiddenlab.study`'s reporter): all it knows of its surroundings is the `Reporter` protocol, which
hands it a checkpoint to resume from and takes each epoch's metrics, state and artifacts.

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

from hiddenlab.models import build_model, connections
from hiddenlab.models.selection import METHODS, selection_layers
from hiddenlab.models.selection.finetune import from_parent, inherit, load_parent

from .config import TrialConfig


class TrialDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class Reporter(Protocol):
    progress: bool

    def load_state(self) -> dict | None: ...

    def report(self, metrics: dict, state: dict | None, artifacts: dict | None) -> None: ...


class LocalReporter:
    """Foreground trials: everything in one directory, checkpoint written atomically each epoch."""

    def __init__(self, out_dir: str | os.PathLike, progress: bool = True,
                 keep_epochs: tuple[int, ...] = (), config: dict | None = None):
        self.out = Path(out_dir)
        self.config = config  # written beside the first checkpoint, never before
        self.progress = progress
        self.keep_epochs = set(keep_epochs)

    def load_state(self) -> dict | None:
        path = self.out / "checkpoint.pt"
        return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None

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


# --- the trial -----------------------------------------------------------------------------------
def resolve_device(cfg: TrialConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        from .config import ConfigError

        raise ConfigError("device", "cuda was asked for but no CUDA device is visible")
    return torch.device(cfg.device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % 2**63


def run_trial(cfg: TrialConfig, reporter: Reporter) -> dict:
    """Train one trial to its last epoch (resuming from the reporter's checkpoint if it has one)
    and return the final metrics."""
    from hiddenlab.data import build_data

    if cfg.method == "finetune":
        cfg = inherit(cfg, load_parent(cfg)[0])
    device = resolve_device(cfg)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    seed_everything(cfg.seed)
    data = build_data(cfg, device)

    seed_everything(cfg.seed)  # the network's draw does not depend on how data was built
    if cfg.method == "finetune":
        model = from_parent(cfg, data.input_shape, data.num_classes)
    else:
        model = build_model(cfg, data.input_shape, data.num_classes)
    model.to(device)
    if device.type == "cuda" and cfg.channels_last:
        to_channels_last(model)
    forward = torch.compile(model) if cfg.compile else model

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(cfg, params)
    steps_per_epoch = len(data.train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(cfg, step / steps_per_epoch))
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    layers = selection_layers(model)
    total = connections(model)
    selects = METHODS[cfg.method].selects

    state = reporter.load_state()
    start_epoch, history = 1, []
    previous = snapshot(layers) if selects else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history = state["epoch"] + 1, state["history"]
        previous = state.get("selection")
        if history and history[-1].get("done"):
            return history[-1]
    started = time.time() - (history[-1]["wall_time_s"] if history else 0.0)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16"
                else contextlib.nullcontext())

    metrics: dict = {}
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.time()
        lr = optimizer.param_groups[0]["lr"]  # the epoch's starting lr
        torch.manual_seed(epoch_seed(cfg.seed, epoch))
        data.train.set_epoch(epoch)
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        bar = _progress(data.train, reporter.progress, f"epoch {epoch}/{cfg.epochs}")
        for step, (x, y) in enumerate(bar):
            with autocast:
                logits = forward(x)
                loss = criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if step % 50 == 0 and not torch.isfinite(loss_sum):  # a sync every 50 steps only
                raise TrialDiverged(f"loss is {loss_sum.item()} at epoch {epoch}, step {step}")
        train_loss = float(loss_sum) / max(seen, 1)
        if not math.isfinite(train_loss):
            raise TrialDiverged(f"loss is {train_loss} at epoch {epoch}")

        val_loss, val_acc = evaluate(forward, model, data.val, criterion, autocast)
        metrics = {"epoch": epoch, "train_loss": train_loss, "train_acc": float(correct) / max(seen, 1),
                   "val_loss": val_loss, "val_acc": val_acc,
                   "lr": lr, "params": total}
        if selects:
            current = snapshot(layers)
            metrics["flip_rate"], metrics["flip_rate_layers"] = flip_rates(previous, current, layers)
            previous = current
        else:
            metrics["flip_rate"] = float("nan")
        kept = sum(layer.kept_count() for _, layer in layers)
        metrics["kept_fraction"] = kept / total
        metrics["subnet_params"] = kept
        artifacts = None
        if epoch == cfg.epochs:
            metrics["test_loss"], metrics["test_acc"] = evaluate(forward, model, data.test,
                                                                 criterion, autocast)
            metrics["done"] = True
            if selects and cfg.save_selection:
                artifacts = {"selection.json": json.dumps(selection_histograms(layers))}
        metrics["epoch_time_s"] = time.time() - t0
        metrics["wall_time_s"] = time.time() - started
        metrics["eval_mode"] = cfg.resolved_eval_mode
        history.append(metrics)
        state = {"config": cfg.to_dict(), "epoch": epoch, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "history": history, "selection": previous}
        reporter.report(metrics, state, artifacts)
    return metrics


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
        return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, nesterov=cfg.nesterov, **fused)
    return torch.optim.Adam(params, lr=cfg.learning_rate, betas=(cfg.momentum, 0.999),
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
    bounds = [0, *[r for r in cfg.restarts if 0 < r < cfg.epochs], cfg.epochs]
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


def flip_rates(previous, current, layers) -> tuple[float, dict[str, float]]:
    per_layer, flips, total = {}, 0, 0
    for name, sel in current.items():
        changed = int((sel != previous[name]).sum()) if previous and name in previous else 0
        per_layer[name] = changed / sel.numel()
        flips, total = flips + changed, total + sel.numel()
    return (flips / total if total else float("nan")), per_layer


@torch.no_grad()
def selection_histograms(layers, bins: int = 50) -> dict[str, dict[str, list]]:
    """Per layer: histogram counts of the frozen values that were selected and of those that
    were not (for slot machines: the chosen value vs the K-1 others of each connection)."""
    out = {}
    for name, layer in layers:
        sel = layer.selection()
        if sel is None:
            continue
        values = layer.frozen_values().float().cpu()
        sel = sel.cpu()
        if sel.dtype == torch.bool:
            chosen, other = values[sel], values[~sel]
        else:
            onehot = torch.zeros_like(values, dtype=torch.bool).scatter_(-1, sel.unsqueeze(-1), True)
            chosen, other = values[onehot], values[~onehot]
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            hi = lo + 1e-12
        edges = torch.linspace(lo, hi, bins + 1)
        out[name] = {"bins": edges.tolist(),
                     "selected": torch.histc(chosen, bins, lo, hi).long().tolist(),
                     "unselected": torch.histc(other, bins, lo, hi).long().tolist()}
    return out


def _progress(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)
