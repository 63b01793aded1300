"""Ray Tune's machinery for a study: search algorithm, scheduler, metric/mode, samples, callbacks.

`TuneSettings` is what a study file's `tune:` block and the `study run` flags set; `validate()`
builds every object once (no Ray needed) so a bad name or option is refused, naming the field,
before Ray starts. The objects themselves are Ray Tune's: `TuneConfig(search_alg=...,
scheduler=..., num_samples=..., metric=..., mode=..., max_concurrent_trials=...)` and
`RunConfig(callbacks=...)`; nothing here reimplements them.

- search (applies to series that sample fields; grid series are planned trial by trial):
  `random` (= `grid`: Tune's BasicVariantGenerator, grid axes crossed, distributions drawn),
  `optuna` (OptunaSearch, TPE), `hyperopt` (HyperOptSearch). Model-based searchers take no grid:
  a series they drive samples every field that varies and has one seed.
- scheduler: `fifo`, `asha`, `hyperband`, `pbt`, `median` (MedianStoppingRule), with their own
  options (`grace_period`, `reduction_factor`, `max_t`, `perturbation_interval`, ...). Time is
  counted in epochs (`training_iteration`: one report per epoch); `max_t` defaults to the
  trials' epochs. PBT mutates the sampled optimiser fields (lr, momentum, weight_decay: what a
  checkpoint can take over); trials exploit others' checkpoints, so every checkpoint is kept.
- callbacks: `csv`, `tensorboard` (Ray's own loggers, in each trial's folder), `mlflow` (to a
  local tracking URI, default `<storage>/<study>/mlruns`), `wandb` (offline mode, files under
  `<storage>/<study>/wandb`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from hiddenlab.config import ConfigError

SEARCHERS = ("random", "grid", "optuna", "hyperopt")
SCHEDULERS = ("fifo", "asha", "hyperband", "pbt", "median")
CALLBACKS = ("csv", "tensorboard", "mlflow", "wandb")
# Metrics the trainer reports every epoch (a scheduler compares trials on them each epoch).
METRICS = ("val_acc", "val_loss", "train_acc", "train_loss", "best_val_acc")
# Optional packages and the extra that installs them.
EXTRAS = {"optuna": ("optuna", "optuna"), "hyperopt": ("hyperopt", "hyperopt"),
          "mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb"),
          "tensorboard": ("tensorboardX", "tensorboard")}
TIME_ATTR = "training_iteration"   # one report per epoch
# What PBT may change in a running trial: the optimiser's numbers, which a checkpoint takes over
# (`reporter.adapt_state`); a new K, width or init would not fit the network it continues.
PBT_MUTABLE = ("lr", "momentum", "weight_decay")


@dataclass
class TuneSettings:
    num_samples: int = 1
    search: str = "random"
    search_options: dict[str, Any] = field(default_factory=dict)
    scheduler: str = "fifo"
    scheduler_options: dict[str, Any] = field(default_factory=dict)
    metric: str = "val_acc"
    mode: str | None = None          # None: max for accuracies, min for losses
    max_concurrent_trials: int | None = None
    callbacks: list[str] = field(default_factory=list)
    callback_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    # --- building --------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, d: Mapping[str, Any] | None, where: str = "tune") -> "TuneSettings":
        """From a study file's `tune:` block: `search: optuna` or `search: {name: optuna, seed:
        0}`, likewise `scheduler`, and `callbacks: [csv, {mlflow: {tracking_uri: ...}}]`."""
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)} - {"search_options",
                                                             "scheduler_options",
                                                             "callback_options"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}", f"unknown setting; known: "
                              f"{', '.join(sorted(known))}")
        out = cls()
        for key in ("num_samples", "metric", "mode", "max_concurrent_trials"):
            if key in d:
                setattr(out, key, d[key])
        for key in ("search", "scheduler"):
            if key in d:
                name, opts = _named(d[key], f"{where}.{key}")
                setattr(out, key, name)
                setattr(out, f"{key}_options", opts)
        for item in d.get("callbacks") or []:
            name, opts = _named(item, f"{where}.callbacks")
            out.callbacks.append(name)
            if opts:
                out.callback_options[name] = opts
        return out

    def merged(self, **changes: Any) -> "TuneSettings":
        """A copy with the given (not None) settings replaced: command-line flags over the file."""
        keep = {k: v for k, v in changes.items() if v is not None}
        if "search" in keep and keep["search"] != self.search:
            keep.setdefault("search_options", {})
        if "scheduler" in keep and keep["scheduler"] != self.scheduler:
            keep.setdefault("scheduler_options", {})
        if "callbacks" in keep:
            keep["callbacks"] = list(dict.fromkeys([*self.callbacks, *keep["callbacks"]]))
        return dataclasses.replace(self, **keep)

    @property
    def resolved_mode(self) -> str:
        if self.mode is not None:
            return self.mode
        return "min" if "loss" in self.metric else "max"

    @property
    def samples_by_model(self) -> bool:
        return self.search in ("optuna", "hyperopt")

    # --- validation ------------------------------------------------------------------------------
    def validate(self) -> "TuneSettings":
        n = self.num_samples
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError("num_samples", f"{n!r} must be an integer >= 1")
        if self.search not in SEARCHERS:
            raise ConfigError("search", f"{self.search!r} is not one of {', '.join(SEARCHERS)}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError("scheduler", f"{self.scheduler!r} is not one of "
                              f"{', '.join(SCHEDULERS)}")
        if self.metric not in METRICS:
            raise ConfigError("metric", f"{self.metric!r} is not one of {', '.join(METRICS)} "
                              "(the metrics reported every epoch)")
        if self.mode not in (None, "min", "max"):
            raise ConfigError("mode", f"{self.mode!r} is not min or max")
        m = self.max_concurrent_trials
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ConfigError("max_concurrent_trials", f"{m!r} must be an integer >= 1")
        for name in self.callbacks:
            if name not in CALLBACKS:
                raise ConfigError("callbacks", f"{name!r} is not one of {', '.join(CALLBACKS)}")
        if self.search in EXTRAS:
            _need(self.search, "search")
        for name in self.callbacks:
            if name in EXTRAS:
                _need(name, "callbacks")
        self.make_searcher()
        self.make_scheduler(max_t=100, mutations={"lr": [0.1, 0.2]})
        for name in self.callbacks:
            _check_options(_callback_class(name), self.callback_options.get(name, {}),
                           f"callbacks.{name}", fixed=_CALLBACK_FIXED)
        return self

    # --- Ray Tune objects ----------------------------------------------------------------------
    def make_searcher(self):
        """None for random/grid (Tune's default BasicVariantGenerator), else the Searcher."""
        if not self.samples_by_model:
            if self.search_options:
                raise ConfigError(f"search.{next(iter(self.search_options))}",
                                  f"{self.search} search takes no options")
            return None
        if self.search == "optuna":
            from ray.tune.search.optuna import OptunaSearch as cls
        else:
            from ray.tune.search.hyperopt import HyperOptSearch as cls
        opts = dict(self.search_options)
        if self.search == "hyperopt" and "seed" in opts:
            opts["random_state_seed"] = opts.pop("seed")
        _check_options(cls, opts, f"search.{self.search}", fixed=("space", "metric", "mode"))
        return _build(cls, opts, "search")

    def make_scheduler(self, max_t: int, mutations: Mapping[str, Any] | None = None):
        """The scheduler, counting time in epochs; `max_t` defaults to the trials' epochs,
        PBT's `hyperparam_mutations` to `mutations` (the sampled fields' distributions)."""
        from ray.tune import schedulers as s

        cls = {"fifo": s.FIFOScheduler, "asha": s.ASHAScheduler,
               "hyperband": s.HyperBandScheduler, "pbt": s.PopulationBasedTraining,
               "median": s.MedianStoppingRule}[self.scheduler]
        opts = dict(self.scheduler_options)
        where = f"scheduler.{self.scheduler}"
        _check_options(cls, opts, where, fixed=("metric", "mode", "time_attr",
                                                "hyperparam_mutations", "custom_explore_fn"))
        if self.scheduler == "fifo":
            return _build(cls, opts, "scheduler")
        opts["time_attr"] = TIME_ATTR
        if self.scheduler in ("asha", "hyperband"):
            opts.setdefault("max_t", max_t)
        if self.scheduler == "median":
            opts.setdefault("grace_period", 1)
        if self.scheduler == "pbt":
            mutable = {k: v for k, v in (mutations or {}).items() if k in PBT_MUTABLE}
            if not mutable:
                raise ConfigError("scheduler", f"pbt mutates the sampled fields among "
                                  f"{', '.join(PBT_MUTABLE)}; this series samples none of them")
            opts.setdefault("perturbation_interval", 1)
            opts["hyperparam_mutations"] = mutable
        return _build(cls, opts, "scheduler")

    def make_callbacks(self, storage, study: str) -> list:
        """Logger callbacks. CSV and TensorBoard files are Ray's own (written into each trial's
        folder); MLflow logs to a local tracking URI and W&B runs offline unless told otherwise."""
        out = []
        for name in self.callbacks:
            opts = dict(self.callback_options.get(name, {}))
            if name == "mlflow":
                if "tracking_uri" not in opts:
                    # A local folder beside the results: MLflow 3 asks for an explicit opt-in
                    # to its file store (the database store needs a server-side install).
                    opts["tracking_uri"] = _file_uri(storage.uri_of(study, "mlruns"))
                    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
                opts.setdefault("experiment_name", study)
            elif name == "wandb":
                opts.setdefault("project", study)
                opts.setdefault("mode", "offline")
                if opts["mode"] == "offline":   # Ray asks for an API key unless this says so
                    os.environ.setdefault("WANDB_MODE", "offline")
                opts.setdefault("dir", storage.uri_of(study))
                storage.makedirs(study)
            out.append(_build(_callback_class(name), opts, f"callbacks.{name}"))
        return out

    def describe(self) -> str:
        parts = [f"search {self.search}", f"scheduler {self.scheduler}",
                 f"metric {self.metric} ({self.resolved_mode})"]
        if self.num_samples > 1:
            parts.append(f"num_samples {self.num_samples}")
        if self.max_concurrent_trials:
            parts.append(f"at most {self.max_concurrent_trials} at once")
        if self.callbacks:
            parts.append("callbacks " + ", ".join(self.callbacks))
        return "; ".join(parts)


_CALLBACK_FIXED = ()


def _named(value: Any, where: str) -> tuple[str, dict[str, Any]]:
    """`"asha"` or `{"name": "asha", "grace_period": 1}` or `{"asha": {"grace_period": 1}}`."""
    if isinstance(value, str):
        return value.lower(), {}
    if isinstance(value, Mapping):
        d = dict(value)
        if "name" in d:
            name = d.pop("name")
            return str(name).lower(), d
        if len(d) == 1:
            name, opts = next(iter(d.items()))
            if opts is None:
                opts = {}
            if isinstance(opts, Mapping):
                return str(name).lower(), dict(opts)
    raise ConfigError(where, f"{value!r} is not NAME or {{name: NAME, option: value, ...}}")


def _need(name: str, where: str) -> None:
    module, extra = EXTRAS[name]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(where, f"{name} needs the {module} package: pip install "
                          f"'hiddenlab[{extra}]'")


def _callback_class(name: str):
    if name == "csv":
        from ray.tune.logger import CSVLoggerCallback
        return CSVLoggerCallback
    if name == "tensorboard":
        from ray.tune.logger import TBXLoggerCallback
        return TBXLoggerCallback
    if name == "mlflow":
        from ray.air.integrations.mlflow import MLflowLoggerCallback
        return MLflowLoggerCallback
    from ray.air.integrations.wandb import WandbLoggerCallback
    return WandbLoggerCallback


def _check_options(cls, opts: Mapping[str, Any], where: str, fixed: Sequence[str]) -> None:
    params = inspect.signature(cls.__init__).parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    allowed = [p for p in params if p not in ("self", *fixed) and
               params[p].kind not in (inspect.Parameter.VAR_KEYWORD,
                                      inspect.Parameter.VAR_POSITIONAL)]
    for key in opts:
        if key in fixed:
            raise ConfigError(f"{where}.{key}", "is set by hiddenlab (metric/mode from the "
                              "study, time in epochs, PBT mutations from the sampled fields)")
        if key not in allowed and not takes_kwargs:
            raise ConfigError(f"{where}.{key}", f"unknown option; {cls.__name__} takes "
                              f"{', '.join(allowed) or 'none'}")


def _build(cls, opts: Mapping[str, Any], where: str):
    try:
        return cls(**opts)
    except (AssertionError, TypeError, ValueError) as e:
        args = ", ".join(f"{k}={v!r}" for k, v in opts.items())
        raise ConfigError(where, f"{cls.__name__}({args}) refused: {e or type(e).__name__}") \
            from None


def _file_uri(path: str) -> str:
    return path if "://" in path else "file://" + path
