"""Packed trials: N trials of one architecture on one data set trained together, in one process,
by one vectorised network.

Each member is a `Trial` (study/trainer.py) built exactly as when it runs alone (seed, then
build), with its own data order, optimiser, learning-rate schedule, hooks and `Record`
(metrics, best-validation network, checkpoint state). What is shared is the forward and backward
pass: a `PackedNet` walks the members' common module tree on activations that hold every member
side by side in the channel (or feature) axis, `(B, N*C, H, W)` and `(B, N*F)`:

* a selection layer computes each member's effective weight with the member's own layer (its
  top-k, argmax or sample: the very code an unpacked trial runs) and applies all N at once, a
  grouped convolution (`groups=N`) or one batched matrix product (`torch.bmm`);
* BatchNorm normalises the N*C channels in one call with the members' running statistics side by
  side, written back to each member's buffers;
* Dropout draws each member's mask separately (below); ReLU, pooling, Flatten, residual sums act
  per channel and need nothing.

`torch.func.stack_module_state` + `vmap` would do the same for learned weights, but selection
layers cannot run under vmap: edge-popup's threshold is data dependent (a radix select with host
reads on the CPU) and every method has its own autograd Function. benchmarks/packing.py compares
the speed of the two for dense networks.

Randomness: methods that sample in training (supermask, slot-ps), Dropout, and evaluation by
sampling draw from the global RNG. Each member has its own stream (`MemberRNG`): the global
generators' state is swapped in around everything the member does (its weights, its dropout
masks, its optimiser step and hooks, its evaluation), seeded at every epoch exactly as
`Trial.train_epoch` seeds the global RNG, so each member draws what it would draw alone. Packed
trials therefore give the same numbers as unpacked ones for every method, sampling ones
included (tests/test_packing.py), up to the float rounding of a grouped convolution against a
plain one.

A member whose loss becomes NaN/inf fails alone (`TrialDiverged`, with the message the unpacked
trial would have) and leaves the pack; the others go on.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from hiddenlab.config import ConfigError, TrialConfig
from hiddenlab.data import build_data
from hiddenlab.models.selection import SelectionLayer
from hiddenlab.study.trainer import (Record, Trial, TrialDiverged, _json_default, _progress,
                                     epoch_seed, resolve_device, save_atomic, use_threads,
                                     write_atomic)

# Per-trial fields that may differ inside a pack: they change neither the architecture nor the
# data set nor how the process runs. Every method option may differ too (each member computes
# its own effective weight; a pack checks that the layer shapes agree). Any other field, including
# one added later, must be equal: unknown means "do not pack".
PER_MEMBER = frozenset({
    "seed", "init", "optimizer", "lr", "momentum", "nesterov", "weight_decay", "schedule",
    "warmup_epochs", "milestones", "gamma", "restarts", "label_smoothing", "recalibrate_bn",
    "recalibrate_batches", "keep_epochs", "save_selection"})


def pack_key(cfg: TrialConfig) -> str:
    """Trials with the same key can share a pack: the method and every shared field outside
    PER_MEMBER (architecture, data, batch size, epochs, device, precision)."""
    shared = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
              if f.name != "options" and f.name not in PER_MEMBER}
    return json.dumps(shared, sort_keys=True, default=str)


def check_packable(cfgs: list[TrialConfig]) -> None:
    """ConfigError unless these trials can train as one pack."""
    if not cfgs:
        raise ConfigError("pack", "a pack needs at least one trial")
    if len({pack_key(c) for c in cfgs}) > 1:
        raise ConfigError("pack", "trials of one pack must share method, model and data "
                          f"fields (all but {', '.join(sorted(PER_MEMBER))} and the method's "
                          "options)")
    if cfgs[0].compile:
        raise ConfigError("compile", "packed trials run without torch.compile; set "
                          "compile=false or run the trials unpacked (pack 1)")


# --- each member's own random stream ---------------------------------------------------------------
class MemberRNG:
    """A member's global-RNG stream. `with rng:` installs the member's generator states (CPU, and
    the current CUDA device's) and takes them back out on exit; nothing outside a member context
    draws in a packed trial, so the outside state is not restored. A member that never draws
    (`draws_randomly` is False) gets an inactive stream: no state is swapped (a swap costs
    ~10-40 us on the CPU, several per member per step)."""

    def __init__(self, device: torch.device, active: bool = True):
        self.cuda, self.active = device.type == "cuda", active
        self.cpu_state: torch.Tensor | None = None
        self.cuda_state: torch.Tensor | None = None

    def seed(self, seed: int) -> None:
        """The state `torch.manual_seed(seed)` leaves (Trial.train_epoch's per-epoch reseed)."""
        if self.active:
            torch.manual_seed(seed)
            self._save()

    def _save(self) -> None:
        self.cpu_state = torch.get_rng_state()
        if self.cuda:
            self.cuda_state = torch.cuda.get_rng_state()

    def __enter__(self):
        if self.active and self.cpu_state is not None:
            torch.set_rng_state(self.cpu_state)
            if self.cuda:
                torch.cuda.set_rng_state(self.cuda_state)
        return self

    def __exit__(self, *exc) -> None:
        if self.active:
            self._save()


def draws_randomly(t: Trial) -> bool:
    """Whether trial t may read the global RNG while it trains or evaluates: a method that samples
    (methods declare it: `samples_in_training`, an evaluation by sampling), dropout, or hooks
    (which may draw)."""
    return (t.method.samples_in_training or t.cfg.eval_label == "sample" or bool(t.hooks) or
            any(isinstance(m, _RANDOM) and getattr(m, "p", 1.0) > 0 for m in t.model.modules()))


# --- the packed network ------------------------------------------------------------------------------
class PackedLayer(nn.Module):
    """N members' selection layers of one shape: each member's effective weight (under its RNG),
    applied to all members at once."""

    def __init__(self, layers: list[SelectionLayer], rngs: list[MemberRNG]):
        super().__init__()
        specs = {layer.spec for layer in layers}
        if len(specs) > 1:
            raise ConfigError("pack", f"layers of different shapes cannot be packed: {specs}")
        self.spec = layers[0].spec
        # plain lists: the members own these modules (and their parameters), the pack only runs them
        self.members, self.rngs = layers, rngs

    def weights(self) -> list[torch.Tensor]:
        out = []
        for layer, rng in zip(self.members, self.rngs):
            with rng:
                out.append(layer.effective_weight())
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ws, n, spec = self.weights(), len(self.members), self.spec
        if spec.is_conv:
            return F.conv2d(x, torch.cat(ws), None, spec.stride, spec.padding, groups=n)
        b = x.shape[0]
        if x.dim() != 2 or x.shape[1] != n * spec.shape[1]:
            raise ConfigError("pack", f"a packed linear layer of {n} x {spec.shape[1]} inputs "
                              f"got {tuple(x.shape)}: the model reshapes its activations in a "
                              "way packing cannot follow")
        # (B, N*in) -> (N, B, in) x (N, in, out) -> (N, B, out) -> (B, N*out)
        out = torch.bmm(x.view(b, n, -1).transpose(0, 1), torch.stack(ws).transpose(1, 2))
        return out.transpose(0, 1).reshape(b, -1)


class PackedBatchNorm(nn.Module):
    """N members' BatchNorm layers as one over N*C channels: the running statistics (and affine
    weights, where learned) concatenated for the call and written back to each member."""

    def __init__(self, bns: list[nn.modules.batchnorm._BatchNorm]):
        super().__init__()
        b0 = bns[0]
        for b in bns:
            if (type(b), b.num_features, b.eps, b.affine, b.track_running_stats) != \
                    (type(b0), b0.num_features, b0.eps, b0.affine, b0.track_running_stats):
                raise ConfigError("pack", "BatchNorm layers of the members differ")
        self.members = bns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bns, b0 = self.members, self.members[0]
        factor = 0.0 if b0.momentum is None else b0.momentum
        if b0.training and b0.track_running_stats:  # as _BatchNorm.forward counts batches
            for b in bns:
                b.num_batches_tracked.add_(1)
            if b0.momentum is None:
                factor = 1.0 / float(b0.num_batches_tracked)
        track = b0.track_running_stats
        mean = torch.cat([b.running_mean for b in bns]) if track else None
        var = torch.cat([b.running_var for b in bns]) if track else None
        weight = torch.cat([b.weight for b in bns]) if b0.affine else None
        bias = torch.cat([b.bias for b in bns]) if b0.affine else None
        use_batch = b0.training or not track
        out = F.batch_norm(x, mean, var, weight, bias, use_batch, factor, b0.eps)
        if track and b0.training:
            with torch.no_grad():
                for b, m, v in zip(bns, mean.chunk(len(bns)), var.chunk(len(bns))):
                    b.running_mean.copy_(m)
                    b.running_var.copy_(v)
        return out


class PackedDropout(nn.Module):
    """Each member's dropout mask drawn from its own stream, on its own (B, F) slice, exactly as
    the member alone draws it."""

    def __init__(self, drops: list[nn.Dropout], rngs: list[MemberRNG]):
        super().__init__()
        if len({d.p for d in drops}) > 1:
            raise ConfigError("pack", "dropout rates of the members differ")
        self.members, self.rngs = drops, rngs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d0 = self.members[0]
        if not d0.training or d0.p == 0:
            return x
        n = len(self.members)
        parts = x.reshape(x.shape[0], n, -1)
        outs = []
        for j, rng in enumerate(self.rngs):
            with rng:
                outs.append(F.dropout(parts[:, j].contiguous(), d0.p, True))
        return torch.stack(outs, 1).reshape(x.shape)


_RANDOM = (nn.modules.dropout._DropoutNd, nn.RReLU)


def pack_modules(mods: list[nn.Module], rngs: list[MemberRNG]) -> nn.Module:
    """One module running the members' modules `mods` (the same place in each member's tree) on
    packed activations: the packed layers above, or a parameter-free module's copy with packed
    children."""
    m0 = mods[0]
    if isinstance(m0, SelectionLayer):
        if not all(isinstance(m, SelectionLayer) for m in mods):
            raise ConfigError("pack", f"members differ at a {type(m0).__name__}")
        return PackedLayer(mods, rngs)
    if len({type(m) for m in mods}) > 1:
        raise ConfigError("pack", f"members' networks differ: {sorted({type(m).__name__ for m in mods})}")
    if isinstance(m0, nn.modules.batchnorm._BatchNorm):
        return PackedBatchNorm(mods)
    if type(m0) is nn.Dropout:
        return PackedDropout(mods, rngs)
    own = [n for n, p in (*m0._parameters.items(), *m0._buffers.items()) if p is not None]
    if own or isinstance(m0, _RANDOM):
        raise ConfigError("pack", f"cannot pack a {type(m0).__name__} (packing runs selection "
                          "layers, BatchNorm, Dropout and modules without parameters or "
                          "randomness); run these trials unpacked")
    names = [list(m._modules) for m in mods]
    if any(n != names[0] for n in names):
        raise ConfigError("pack", f"members' {type(m0).__name__} modules differ")
    clone = object.__new__(type(m0))
    clone.__dict__.update(m0.__dict__)
    for key, value in m0.__dict__.items():
        if "hook" in key and isinstance(value, dict):  # the members' hooks are the members'
            clone.__dict__[key] = type(value)()
    clone._parameters, clone._buffers = {}, {}
    clone._modules = {name: None if child is None else
                      pack_modules([m._modules[name] for m in mods], rngs)
                      for name, child in m0._modules.items()}
    return clone


class PackedNet(nn.Module):
    """The members' networks run as one: `forward(xs)` takes each member's input batch (one
    shape) and returns logits (B, N, classes)."""

    def __init__(self, models: list[nn.Module], rngs: list[MemberRNG]):
        super().__init__()
        self.models, self.rngs = models, rngs
        self.body = pack_modules(models, rngs)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        for model, x, rng in zip(self.models, xs, self.rngs):
            if model._forward_pre_hooks:  # e.g. edge-popup's global top-k sets its masks here
                with rng:
                    for hook in list(model._forward_pre_hooks.values()):
                        hook(model, (x,))
        x = torch.cat(xs, 1)
        return self.body(x).view(x.shape[0], len(xs), -1)


# --- data ------------------------------------------------------------------------------------------
def member_data(cfgs: list[TrialConfig], device: torch.device) -> list:
    """Each member's DataBundle. Members of a pack share the data set (the pack key says so); with
    the device-resident loader they share its tensors too, each with a training loader of its
    own seed (the order is a function of (seed, epoch)); other loaders are built per member."""
    from hiddenlab.data.loaders.gpu import GPULoader

    first = build_data(cfgs[0], device)
    out = [first]
    for cfg in cfgs[1:]:
        if isinstance(first.train, GPULoader):
            train = copy.copy(first.train)
            train.seed, train.epoch = cfg.seed, 0
            out.append(dataclasses.replace(first, train=train))
        else:
            out.append(build_data(cfg, device))
    return out


# --- training ------------------------------------------------------------------------------------
class Pack:
    """N `Trial`s trained in lockstep through one `PackedNet`. `active` indexes the members
    still training (a diverged member leaves)."""

    def __init__(self, cfgs: list[TrialConfig], device: torch.device):
        check_packable(cfgs)
        self.cfg0, self.device = cfgs[0], device
        self.members = [Trial(cfg, device, data=data)
                        for cfg, data in zip(cfgs, member_data(cfgs, device))]
        self.rngs = [MemberRNG(device, draws_randomly(t)) for t in self.members]
        self.active = list(range(len(cfgs)))
        self.steps_per_epoch = self.members[0].steps_per_epoch
        self.autocast = self.members[0].autocast
        self._build()

    def _build(self) -> None:
        self.net = PackedNet([self.members[j].model for j in self.active],
                             [self.rngs[j] for j in self.active])

    def drop(self, j: int) -> None:
        self.active.remove(j)
        if self.active:
            self._build()

    def member(self, j: int):
        """Context: member j's random stream."""
        return self.rngs[j]

    def train_epoch(self, epoch: int, progress: bool) -> dict[int, tuple | TrialDiverged]:
        """One pass of every active member over its own training order; per member (mean loss,
        accuracy), or the TrialDiverged it failed with: checked where `Trial.train_epoch` checks
        (every 50 steps, and at the end), with its message. A diverged member trains on to the
        end of the epoch (its NaNs stay in its own channels), then leaves the pack."""
        act = list(self.active)
        ms = [self.members[j] for j in act]
        for j, m in zip(act, ms):
            self.rngs[j].seed(epoch_seed(m.cfg.seed, epoch))
            m.data.train.set_epoch(epoch)
            m.model.train()
        loss_sum = torch.zeros(len(act), device=self.device)
        correct = torch.zeros(len(act), device=self.device, dtype=torch.long)
        seen, first, failed = 0, (epoch - 1) * self.steps_per_epoch, {}
        iters = [iter(m.data.train) for m in ms]
        for i in _progress(range(self.steps_per_epoch), progress,
                           f"epoch {epoch}/{self.cfg0.epochs} ({len(act)} packed)"):
            batch = [next(it) for it in iters]
            losses, hits = self._step(act, ms, batch, first + i)
            loss_sum += losses * len(batch[0][1])
            correct += hits
            seen += len(batch[0][1])
            if i % 50 == 0 and not bool(torch.isfinite(loss_sum).all()):  # a sync per 50 steps
                for k, value in enumerate(loss_sum.tolist()):
                    if not math.isfinite(value) and act[k] not in failed:
                        failed[act[k]] = TrialDiverged(f"loss is {value} at epoch {epoch}, "
                                                       f"step {i}")
        out: dict[int, tuple | TrialDiverged] = {}
        for k, j in enumerate(act):
            train_loss = float(loss_sum[k]) / max(seen, 1)
            if j not in failed and not math.isfinite(train_loss):
                failed[j] = TrialDiverged(f"loss is {train_loss} at epoch {epoch}")
            out[j] = failed.get(j) or (train_loss, float(correct[k]) / max(seen, 1))
        for j in failed:
            self.drop(j)
        return out

    def _step(self, act: list[int], ms: list[Trial], batch: list, step: int):
        """One training step of the members `act`: the packed forward and backward, then each
        member's optimiser, schedule and hooks (in its own random stream). Returns the members'
        losses and correct counts (device tensors, no sync)."""
        with self.autocast:
            logits = self.net([x for x, _ in batch])
            losses = torch.stack([m.criterion(logits[:, k].float(), y)
                                  for k, (m, (_, y)) in enumerate(zip(ms, batch))])
        for m in ms:
            m.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # members share no parameter: each gets its own gradient
        for j, m in zip(act, ms):
            with self.rngs[j]:
                m.optimizer.step()
                m.scheduler.step()
                for hook in m.hooks:
                    hook.on_step_end(step)
        hits = (logits.argmax(-1) == torch.stack([y for _, y in batch], 1)).sum(0)
        return losses.detach(), hits

    @torch.no_grad()
    def evaluate(self, split: str = "val") -> dict[int, tuple[float, float]]:
        """Every active member on the shared `split` set: (mean loss, accuracy) each, summed as
        `trainer.evaluate` sums them (per batch, in Python floats)."""
        act = list(self.active)
        ms = [self.members[j] for j in act]
        for j, m in zip(act, ms):
            with self.rngs[j]:
                for hook in m.hooks:
                    hook.before_eval()
            m.model.eval()
        loss_sum, correct, seen = [0.0] * len(act), [0] * len(act), 0
        for x, y in getattr(ms[0].data, split):
            with self.autocast:
                logits = self.net([x] * len(act))
            losses = torch.stack([m.criterion(logits[:, k].float(), y)
                                  for k, m in enumerate(ms)]).tolist()
            hits = (logits.argmax(-1) == y[:, None]).sum(0).tolist()
            for k in range(len(act)):
                loss_sum[k] += losses[k] * len(y)
                correct[k] += hits[k]
            seen += len(y)
        return {j: (loss_sum[k] / max(seen, 1), correct[k] / max(seen, 1))
                for k, j in enumerate(act)}


# --- running a pack ---------------------------------------------------------------------------------
class PackReporter(Protocol):
    progress: bool
    threads: int | None

    def load_state(self) -> dict | None: ...

    def report(self, epoch: int, members: dict[str, dict], state: dict,
               artifacts: dict[str, dict]) -> None:
        """`members`: run id -> the epoch's metrics (as an unpacked trial reports them), or
        {"fatal": True, "diverged": ..., "error": ...} for a member that failed this epoch.
        `state`: the pack's checkpoint ({"epoch", "members": run id -> the member's own
        checkpoint state, "failed": run id -> error}). `artifacts`: run id -> files."""
        ...


def failure(error: BaseException) -> dict:
    """A member's failure as reported (the unpacked trial's error line)."""
    return {"fatal": True, "diverged": isinstance(error, TrialDiverged),
            "error": f"{type(error).__name__}: {error}"}


def run_pack(cfgs: list[TrialConfig], reporter: PackReporter,
             run_ids: list[str] | None = None) -> dict[str, dict]:
    """Train the trials `cfgs` as one pack to their last epoch (resuming from the reporter's
    checkpoint if it has one); returns each member's final metrics, or its failure."""
    run_ids = list(run_ids or [c.run_id() for c in cfgs])
    cfgs = [c.method_spec.prepare(c) for c in cfgs]
    check_packable(cfgs)
    use_threads(cfgs[0], reporter)
    state = reporter.load_state() or {"epoch": 0, "members": {}, "failed": {}}
    failed: dict[str, str] = dict(state["failed"])
    live = [k for k, rid in enumerate(run_ids) if rid not in failed]
    final = {rid: {"fatal": True, "error": failed[rid]} for rid in failed}
    if not live:
        return final
    pack = Pack([cfgs[k] for k in live], resolve_device(cfgs[0]))
    ids = [run_ids[k] for k in live]
    records = [Record(t, state["members"].get(rid)) for t, rid in zip(pack.members, ids)]
    if all(r.done for r in records):
        return {**final, **{rid: r.history[-1] for rid, r in zip(ids, records)}}
    start = {r.start_epoch for r in records}
    if len(start) > 1:
        raise ConfigError("pack", f"the checkpoint's members stopped at different epochs {start}")
    for epoch in range(start.pop(), pack.cfg0.epochs + 1):
        t0 = time.time()
        lrs = {j: pack.members[j].optimizer.param_groups[0]["lr"] for j in pack.active}
        train = pack.train_epoch(epoch, reporter.progress)
        val = pack.evaluate("val") if pack.active else {}
        members, artifacts, states = {}, {}, {}
        for j, result in train.items():
            rid = ids[j]
            if isinstance(result, TrialDiverged):
                members[rid] = final[rid] = failure(result)
                failed[rid] = members[rid]["error"]
                continue
            with pack.member(j):
                metrics, member_state, files = records[j].end_epoch(epoch, lrs[j], result,
                                                                    val[j], t0)
            members[rid], final[rid] = metrics, metrics
            states[rid] = member_state
            if files:
                artifacts[rid] = files
        reporter.report(epoch, members, {"epoch": epoch, "members": states, "failed": failed},
                        artifacts)
        if not pack.active:
            break
    return final


class LocalPackReporter:
    """A pack in one directory: the pack checkpoint `checkpoint.pt` (written atomically each
    epoch) and, per member, `<run_id>/metrics.jsonl`, its artifacts, its kept epochs
    (`epoch_<E>.pt`, the member's own checkpoint: a finetune parent) and `error.txt` if it
    failed."""

    threads = None

    def __init__(self, out_dir: str | os.PathLike, cfgs: dict[str, TrialConfig] | None = None,
                 progress: bool = False):
        self.out = Path(out_dir)
        self.keep = {rid: set(c.keep_epochs) for rid, c in (cfgs or {}).items()}
        self.progress = progress

    def load_state(self) -> dict | None:
        path = self.out / "checkpoint.pt"
        if not path.exists():
            return None
        return torch.load(path, map_location="cpu", weights_only=False)

    def report(self, epoch, members, state, artifacts) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        save_atomic(state, self.out / "checkpoint.pt")
        for rid, metrics in members.items():
            d = self.out / rid
            d.mkdir(exist_ok=True)
            if metrics.get("fatal"):
                write_atomic(d / "error.txt", metrics["error"] + "\n")
                continue
            member = state["members"][rid]
            write_atomic(d / "metrics.jsonl", "".join(json.dumps(m, default=_json_default) + "\n"
                                                      for m in member["history"]))
            if epoch in self.keep.get(rid, ()):
                save_atomic(member, d / f"epoch_{epoch}.pt")
            for name, content in (artifacts.get(rid) or {}).items():
                write_atomic(d / name, content)

