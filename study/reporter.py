"""The trainer's `Reporter` under Ray Tune, and the Ray Tune trainable of hiddenlab studies.

Each epoch the trainer hands over (metrics, state, artifacts): the state goes into a Tune
checkpoint (`checkpoint.pt` in a directory Tune uploads to the storage) reported together with the
metrics through `ray.tune.report`; `load_state` reads the latest one back (`ray.tune.get_checkpoint`)
when Tune restores the trial after a failure or a driver restart. A checkpoint that cannot be read
(cut short when a node died) is set aside and the one before it used (Tune keeps two), so the
trial is not retried into the same bad file. Artifacts (selection.json) and
the kept epochs of `cfg.keep_epochs` (finetune parents) are written straight to the study's
storage: `artifacts/<run_id>/` and `checkpoints/<run_id>/epoch_<E>.pt`.

A trial whose loss goes NaN/inf (TrialDiverged), or that a retry cannot fix (ConfigError, e.g. a
missing finetune parent), reports one last result with `fatal: True` and the reason, checkpoints a
marker, and fails: the study callback stops Tune from retrying it, and should a retry still
happen the marker makes it fail again at once.

A trial of a sampling series gets its fields from Tune's draw: its run id is computed here from
the resolved TrialConfig (after the series' `derive`), and every result carries that config
(`trial_config`), which the export reads back. A trial a scheduler stops early simply gets no
more epochs: its last result has no test accuracy (the export marks it STOPPED). Under PBT a trial
may continue from another trial's checkpoint with mutated fields: the optimiser state is adapted
to the new learning rate, momentum and weight decay (`adapt_state`).
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
import socket
import sys
import tempfile
import time
from typing import Any

from hiddenlab.config import ConfigError, all_fields, kind_of

STATE_FILE = "checkpoint.pt"
MARKER_FILE = "hiddenlab.json"
STATE_KEYS = frozenset({"epoch", "model", "optimizer", "scheduler", "history"})
_CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")   # Tune's names: checkpoint_000003


def _plain(value: Any) -> Any:
    """JSON-friendly metric values (numpy/torch scalars -> Python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, RuntimeError):
            return str(value)
    return value


class TuneReporter:
    """Implements the trainer's Reporter protocol on top of `ray.tune.report`."""

    progress = False

    def __init__(self, cfg, run_id: str, storage_uri: str | None = None,
                 study: str | None = None, threads: int | None = None,
                 metric: str = "val_acc", with_config: bool = False):
        from hiddenlab.study.storage import Storage

        self.cfg = cfg
        self.threads = threads  # the trial's Ray CPUs: its share of the node's cores
        self.run_id = run_id
        self.storage = Storage(storage_uri) if storage_uri else None
        self.study = study
        self.keep_epochs = set(cfg.keep_epochs)
        self.started = time.time()
        self.reports = 0
        self.metric = metric      # a fatal result carries it (NaN): Tune checks every result
        self.trial_config = json.dumps(cfg.to_dict(), sort_keys=True) if with_config else None
        self.device_kind = device_kind(cfg)

    # --- Reporter protocol --------------------------------------------------------------------
    def load_state(self) -> dict | None:
        """The latest readable checkpoint: one that cannot be read (cut short by a crashed node,
        a full disk) is renamed `checkpoint.pt.unreadable`, so a later retry skips it at once,
        and the one before it is used (Tune keeps two). With none readable the trial starts
        anew: the same result, later."""
        from ray import tune

        latest = tune.get_checkpoint()
        if latest is None:
            return None
        for checkpoint in _newest_first(latest):
            try:
                return self._read(checkpoint)
            except UnreadableCheckpoint as e:
                _log(f"trial {self.run_id}: {e}; trying the checkpoint before it")
                _set_aside(checkpoint)
        _log(f"trial {self.run_id}: no readable checkpoint; starting from epoch 1")
        return None

    def _read(self, checkpoint) -> dict:
        import torch

        from hiddenlab.study.trainer import TrialDiverged

        with checkpoint.as_directory() as d:
            marker = os.path.join(d, MARKER_FILE)
            if os.path.exists(marker):
                with open(marker) as f:
                    meta = json.load(f)
                if meta.get("fatal"):   # resumed after failing for good: fail again at once
                    error = TrialDiverged(f"{meta.get('error')} (failed before; not retried)")
                    self.report_fatal(error)
                    raise error
            path = os.path.join(d, STATE_FILE)
            if not os.path.exists(path):
                raise UnreadableCheckpoint(f"{checkpoint.path} holds no {STATE_FILE}")
            try:
                state = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as e:  # truncated, or not a checkpoint at all
                raise UnreadableCheckpoint(f"{checkpoint.path}/{STATE_FILE} is unreadable "
                                           f"({type(e).__name__})") from None
        if not isinstance(state, dict) or not STATE_KEYS <= state.keys():
            raise UnreadableCheckpoint(f"{checkpoint.path}/{STATE_FILE} is not a hiddenlab "
                                       "trial state")
        return adapt_state(state, self.cfg)

    def report(self, metrics: dict, state: dict | None = None,
               artifacts: dict | None = None) -> None:
        import torch
        from ray import tune

        epoch = metrics.get("epoch")
        for name, content in (artifacts or {}).items():
            self._write_artifact(name, content)
        out = self._metrics(metrics)
        if state is None:
            tune.report(out)
            return
        with tempfile.TemporaryDirectory(prefix="hiddenlab-ckpt-") as d:
            path = os.path.join(d, STATE_FILE)
            torch.save(state, path)
            with open(os.path.join(d, MARKER_FILE), "w") as f:
                json.dump({"run_id": self.run_id, "epoch": epoch}, f)
            if epoch in self.keep_epochs and self.storage is not None:
                self.storage.upload_file(path, self.study, "checkpoints", self.run_id,
                                         f"epoch_{epoch}.pt")
            tune.report(out, checkpoint=tune.Checkpoint.from_directory(d))

    # --- failures -----------------------------------------------------------------------------
    def report_fatal(self, error: BaseException) -> None:
        """Last result of a trial that failed for a reason a retry cannot fix (NaN loss, a bad
        parent): the reason, for the results table, and a marker checkpoint."""
        from ray import tune

        from hiddenlab.study.trainer import TrialDiverged

        out = {"fatal": True, "diverged": isinstance(error, TrialDiverged),
               "error": f"{type(error).__name__}: {error}", "run_id": self.run_id,
               "hostname": socket.gethostname(), "node_id": _node_id(),
               self.metric: math.nan}
        if self.trial_config is not None:
            out["trial_config"] = self.trial_config
        with tempfile.TemporaryDirectory(prefix="hiddenlab-ckpt-") as d:
            with open(os.path.join(d, MARKER_FILE), "w") as f:
                json.dump({"run_id": self.run_id, "fatal": True, "error": out["error"]}, f)
            tune.report(out, checkpoint=tune.Checkpoint.from_directory(d))

    # --- helpers ------------------------------------------------------------------------------
    def _metrics(self, metrics: dict) -> dict:
        out = {k: _plain(v) for k, v in metrics.items()}
        out.setdefault("wall_time_s", time.time() - self.started)
        out["run_id"] = self.run_id
        out["hostname"] = socket.gethostname()
        out["node_id"] = _node_id()
        out["device_kind"] = self.device_kind
        if self.trial_config is not None:
            out["trial_config"] = self.trial_config
        self.reports += 1
        return out

    def _write_artifact(self, name: str, content: bytes | str) -> None:
        if self.storage is None:
            return
        data = content.encode() if isinstance(content, str) else bytes(content)
        self.storage.write_bytes(data, self.study, "artifacts", self.run_id, name)


class UnreadableCheckpoint(RuntimeError):
    """A Tune checkpoint of a trial without a readable trial state."""


def _newest_first(latest) -> list:
    """The checkpoint Tune hands back, then the older ones beside it in the trial's folder
    (`checkpoint_<index>`, lower index = older), newest first."""
    from pyarrow.fs import FileSelector, FileType
    from ray import tune

    out = [latest]
    folder, name = posixpath.split(latest.path.rstrip("/"))
    mine = _CHECKPOINT_DIR.match(name)
    if mine is None:
        return out
    try:
        infos = latest.filesystem.get_file_info(FileSelector(folder))
    except OSError:
        return out
    older = []
    for info in infos:
        m = _CHECKPOINT_DIR.match(posixpath.basename(info.path))
        if m and info.type == FileType.Directory and int(m.group(1)) < int(mine.group(1)):
            older.append((int(m.group(1)), info.path))
    return out + [tune.Checkpoint(path, filesystem=latest.filesystem)
                  for _, path in sorted(older, reverse=True)]


def _set_aside(checkpoint) -> None:
    """Rename an unreadable state file, kept for inspection, so no retry reads it again."""
    path = posixpath.join(checkpoint.path, STATE_FILE)
    try:
        checkpoint.filesystem.move(path, path + ".unreadable")
    except OSError:  # already moved by an earlier attempt, or a read-only storage
        pass


def _log(message: str) -> None:
    print(f"[hiddenlab] {message}", file=sys.stderr, flush=True)


def _node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # outside Ray
        return None


def device_kind(cfg) -> str:
    """What the trial trains on, for cost estimates: `cpu` or the CUDA device's name."""
    from hiddenlab.study.trainer import resolve_device

    try:
        device = resolve_device(cfg)
    except Exception:   # the trial itself reports the problem
        return "unknown"
    if device.type == "cuda":
        import torch

        return f"cuda {torch.cuda.get_device_name(device)}"
    return device.type


def adapt_state(state: dict, cfg) -> dict:
    """A checkpoint taken under other optimiser fields (PBT: another trial's, then mutated) set
    to `cfg`'s learning rate, momentum and weight decay; the schedule's position is kept."""
    saved = state.get("config") or {}
    old_lr, new_lr = saved.get("lr"), cfg.lr
    changed = [k for k in ("lr", "momentum", "weight_decay") if saved.get(k) != getattr(cfg, k)]
    if not changed or not old_lr:
        return state
    ratio = new_lr / old_lr
    for group in state["optimizer"]["param_groups"]:
        group["lr"] *= ratio
        if "initial_lr" in group:
            group["initial_lr"] = new_lr
        group["weight_decay"] = cfg.weight_decay
        if "betas" in group:
            group["betas"] = (cfg.momentum, group["betas"][1])
        elif "momentum" in group:
            group["momentum"] = cfg.momentum
    sched = state.get("scheduler") or {}
    if "base_lrs" in sched:
        sched["base_lrs"] = [new_lr for _ in sched["base_lrs"]]
    if "_last_lr" in sched:
        sched["_last_lr"] = [lr * ratio for lr in sched["_last_lr"]]
    state["config"] = cfg.to_dict()
    return state


def plain_point(point: dict) -> dict:
    """A Tune-drawn config as TrialConfig takes it: numpy scalars (Tune's integer draws) as
    Python numbers, and integer fields that PBT scaled by 0.8/1.2 rounded back to integers."""

    fields = all_fields()
    out = {}
    for k, v in point.items():
        if hasattr(v, "item") and not isinstance(v, (list, tuple, dict, str)):
            v = v.item()
        f = fields.get(k)
        if f is not None and kind_of(f) == "int" and isinstance(v, float) and v == v:
            v = int(round(v))
        out[k] = v
    return out


def make_trainable(storage_uri: str, study: str, cpus_per_trial: float = 1.0,
                   metric: str = "val_acc", derives: dict | None = None):
    """The Ray Tune function trainable: one hiddenlab trial from a Tune config. A config without
    a run id is a sampled one: its series' `derive` (from `derives`, by series label) runs on the
    drawn fields, and the run id is computed from the resulting TrialConfig."""
    derives = dict(derives or {})

    def hiddenlab_trial(config: dict) -> None:
        from hiddenlab.study.spaces import config_from_ray
        from hiddenlab.study.trainer import TrialDiverged, run_trial

        sampled = not config.get("run_id")
        point = dict(config)
        if sampled:
            point = plain_point(point)
            derive = derives.get(config.get("series"))
            if derive is not None:
                point.update(derive(dict(point)))
        try:
            cfg = config_from_ray(point)
        except ConfigError as e:           # a draw or mutation outside the field's range
            from ray import tune

            tune.report({"fatal": True, "error": f"ConfigError: {e}", metric: math.nan})
            raise
        reporter = TuneReporter(cfg, config.get("run_id") or cfg.run_id(), storage_uri, study,
                                threads=max(1, int(math.floor(cpus_per_trial))),
                                metric=metric, with_config=sampled)
        try:
            run_trial(cfg, reporter)
        except (TrialDiverged, ConfigError) as e:  # deterministic: retrying cannot help
            reporter.report_fatal(e)
            raise

    return hiddenlab_trial
