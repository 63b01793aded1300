"""The one typed description of a trial.

`TrialConfig` is the single source of truth for a trial: it validates itself, generates the
`hiddenlab train` flags (`add_arguments` / `from_args`), names a stable run id (a hash of the fields
that differ from their defaults, after method defaults are resolved) and is what Ray Tune search
spaces are built over (`hiddenlab.study`).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import typing
from dataclasses import dataclass, field, fields
from typing import Any


class ConfigError(ValueError):
    """A field has a value outside what is allowed. The message names the field."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


def _f(default, help: str, choices: typing.Callable[[], list[str]] | None = None, **kw):
    """A dataclass field carrying its CLI help and (lazily, to avoid import cycles) its choices."""
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    if isinstance(default, (list, dict, tuple)) and not isinstance(default, tuple):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


def _names(module: str, registry: str) -> typing.Callable[[], list[str]]:
    """Allowed values of a field: a registry's names, imported only when first asked for."""

    def choices() -> list[str]:
        return sorted(getattr(importlib.import_module(module), registry))

    return choices


_methods = _names("hiddenlab.models.selection", "METHODS")
_models = _names("hiddenlab.models", "MODELS")
_inits = _names("hiddenlab.models.inits", "INITS")
_score_inits = _names("hiddenlab.models.inits", "SCORE_INITS")
_datasets = _names("hiddenlab.data", "DATASETS")
_loaders = _names("hiddenlab.data", "LOADERS")


OPTIMIZERS = ["sgd", "adam"]
SCHEDULES = ["constant", "cosine", "multistep", "sgdr"]
PRECISIONS = ["fp32", "bf16"]
EVAL_MODES = ["auto", "argmax", "sample", "expected"]
AUGMENTS = ["auto", "none", "crop-flip", "flip"]
DEVICES = ["auto", "cpu", "cuda"]
SLOT_METHODS = ("slot-gs", "slot-ps")


@dataclass(frozen=True)
class TrialConfig:
    # --- what is trained ---------------------------------------------------------------------
    method: str = _f("edgepopup", "selection method (or `dense` learned weights)", _methods)
    model: str = _f("conv6", "network name; see `hiddenlab models`", _models)
    depth: int | None = _f(None, "conv-family depth (any even N; default: the model name's)")
    width_mult: float = _f(1.0, "multiplier on every hidden width")
    k: float | None = _f(None, "fraction of weights KEPT, in (0, 1] (edgepopup default 0.5)")
    K: int | None = _f(None, "values per connection for slot machines (default 8)")
    init: str = _f("auto", "weight distribution (auto: method default)", _inits)
    score_init: str = _f("auto", "score distribution (auto: method default)", _score_inits)
    score_const: float = _f(0.0, "logit for score_init=constant (Zhou: lower -> sparser)")
    score_abs: bool = _f(True, "edge-popup ranks |score| (reference) instead of score")
    topk_scope: str = _f("layer", "edge-popup top-k per layer or global across layers",
                         lambda: ["layer", "global"])
    supermask_scale: bool = _f(False, "Zhou dynamic scaling: weights x n/kept")
    eval_mode: str = _f("auto", "selection at evaluation: auto|argmax|sample|expected",
                        lambda: EVAL_MODES)
    dense_first: bool = _f(False, "keep the first layer dense (learned)")
    dense_last: bool = _f(False, "keep the last layer dense (learned)")
    dropout: float | None = _f(None, "classifier dropout (default: the model's own)")
    parent: str | None = _f(None, "finetune: trial directory or checkpoint to start from")
    parent_epoch: int | None = _f(None, "finetune: the parent's epoch to start from (default last)")

    # --- data ---------------------------------------------------------------------------------
    dataset: str = _f("synthetic", "data set", _datasets)
    loader: str = _f("auto", "data loader (auto: ffcv for imagenet, else gpu)", _loaders)
    data_root: str | None = _f(None, "data directory (default $HIDDENLAB_DATA, then ~/.cache)")
    val_size: int | None = _f(None, "images held out of train for validation (default per data set)")
    augment: str = _f("auto", "augmentation preset (auto: per recipe)", lambda: AUGMENTS)
    subset: int | None = _f(None, "use only this many training images (smoke runs)")
    num_workers: int = _f(2, "loader worker processes (torchvision/ffcv loaders)")
    synthetic_shape: tuple[int, ...] = _f((3, 32, 32), "synthetic data: image shape C H W")
    synthetic_classes: int = _f(10, "synthetic data: number of classes")
    synthetic_size: int = _f(2048, "synthetic data: training images (val/test: a quarter each)")

    # --- optimisation ------------------------------------------------------------------------
    optimizer: str = _f("sgd", "optimiser", lambda: OPTIMIZERS)
    lr: float | None = _f(None, "peak learning rate (default per method's recipe: edgepopup/"
                          "slot-gs 0.1, dense/finetune 0.01 (Adam 3e-4), supermask 200, slot-ps 25)")
    momentum: float = _f(0.9, "SGD momentum / Adam beta1")
    nesterov: bool = _f(False, "Nesterov momentum")
    weight_decay: float = _f(1e-4, "L2 weight decay on trainable parameters (scores)")
    schedule: str = _f("cosine", "learning-rate schedule", lambda: SCHEDULES)
    warmup_epochs: float = _f(0.0, "linear warm-up epochs (cosine)")
    milestones: tuple[int, ...] = _f((), "multistep: epochs where lr is multiplied by gamma")
    gamma: float = _f(0.1, "multistep decay factor")
    restarts: tuple[int, ...] = _f((25, 75), "sgdr: epochs where the cosine restarts")
    epochs: int = _f(10, "training epochs")
    batch_size: int = _f(128, "training batch size")
    eval_batch_size: int = _f(512, "evaluation batch size")
    label_smoothing: float = _f(0.0, "cross-entropy label smoothing")
    seed: int = _f(0, "random seed (weights, scores, data order, sampling)")

    # --- execution ----------------------------------------------------------------------------
    device: str = _f("auto", "auto|cpu|cuda", lambda: DEVICES)
    precision: str = _f("fp32", "fp32 or bf16 autocast", lambda: PRECISIONS)
    channels_last: bool = _f(True, "channels-last memory format on CUDA")
    compile: bool = _f(False, "torch.compile the model")
    cudnn_benchmark: bool = _f(True, "cudnn autotuning on CUDA")
    keep_epochs: tuple[int, ...] = _f((), "keep checkpoints of these epochs (finetune parents)")
    save_selection: bool = _f(True, "save histograms of selected/unselected weights at the end")

    # ------------------------------------------------------------------------------------------
    def __post_init__(self):
        self.validate()

    @property
    def is_slot(self) -> bool:
        return self.method in SLOT_METHODS

    def validate(self) -> None:
        """Refuse any value outside what is allowed, naming the field and the allowed values."""
        for f in fields(self):
            chooser = f.metadata.get("choices")
            value = getattr(self, f.name)
            if chooser is not None and value is not None:
                allowed = chooser()
                if value not in allowed:
                    raise ConfigError(f.name, f"{value!r} is not one of {', '.join(allowed)}")
        if self.k is not None and not (0.0 < self.k <= 1.0):
            raise ConfigError("k", f"{self.k} is outside (0, 1]: k is the fraction of weights kept")
        if self.K is not None:
            if self.K < 1:
                raise ConfigError("K", f"{self.K} < 1: K is the number of values per connection")
            if not self.is_slot:
                raise ConfigError(
                    "K", f"only {', '.join(SLOT_METHODS)} take K (method is {self.method!r})"
                )
        if self.width_mult <= 0:
            raise ConfigError("width_mult", f"{self.width_mult} must be > 0")
        if self.depth is not None:
            from hiddenlab.models import MODELS

            spec = MODELS[self.model]
            if not spec.takes_depth:
                raise ConfigError("depth", f"model {self.model!r} has no depth; only the conv "
                                  "family (conv*, slot-conv*) takes one")
            if self.depth < 2 or self.depth % 2:
                raise ConfigError("depth", f"{self.depth} is not an even number >= 2")
        if self.method == "finetune" and not self.parent:
            raise ConfigError("parent", "finetune needs --parent (a selection trial's directory "
                              "or checkpoint)")
        if self.parent and self.method != "finetune":
            raise ConfigError("parent", f"only method finetune takes a parent (method is "
                              f"{self.method!r})")
        if self.topk_scope == "global" and self.method != "edgepopup":
            raise ConfigError("topk_scope", "global top-k is an edge-popup option")
        if self.eval_mode not in ("auto",):
            allowed = {"supermask": ("sample", "expected"), "slot-gs": ("argmax", "sample"),
                       "slot-ps": ("argmax", "sample")}.get(self.method, ())
            if self.eval_mode not in allowed:
                raise ConfigError("eval_mode", f"{self.eval_mode!r} is not allowed for "
                                  f"{self.method}; allowed: auto, {', '.join(allowed) or '(none)'}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"{getattr(self, name)} must be >= 1")
        if self.lr is not None and self.lr <= 0:
            raise ConfigError("lr", f"{self.lr} must be > 0")
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", f"{self.weight_decay} must be >= 0")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError("label_smoothing", f"{self.label_smoothing} is outside [0, 1)")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError("dropout", f"{self.dropout} is outside [0, 1)")
        if self.subset is not None and self.subset < 1:
            raise ConfigError("subset", f"{self.subset} must be >= 1")

    # --- resolved values (method defaults) ----------------------------------------------------
    @property
    def keep(self) -> float:
        """Fraction kept; 1 where the method keeps every connection."""
        if self.method in ("edgepopup",):
            return 0.5 if self.k is None else self.k
        return 1.0 if self.k is None else self.k

    @property
    def num_values(self) -> int:
        return (8 if self.K is None else self.K) if self.is_slot else 1

    @property
    def learning_rate(self) -> float:
        """cfg.lr, or the method's recipe default (recipes.md) where it is not given."""
        if self.lr is not None:
            return self.lr
        if self.method in ("dense", "finetune"):
            return 3e-4 if self.optimizer == "adam" else 0.01
        return {"supermask": 200.0, "slot-ps": 25.0}.get(self.method, 0.1)

    @property
    def resolved_eval_mode(self) -> str:
        if self.eval_mode != "auto":
            return self.eval_mode
        return {"supermask": "expected", "slot-gs": "argmax", "slot-ps": "argmax"}.get(
            self.method, "deterministic"
        )

    @property
    def resolved_init(self) -> str:
        if self.init != "auto":
            return self.init
        if self.is_slot:
            return "slot-code"
        if self.method == "supermask":
            return "xavier_normal"  # Zhou's TF reference: Glorot normal
        return "kaiming_normal"

    # --- identity -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrialConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(unknown[0], f"unknown field; known fields: {', '.join(sorted(names))}")
        kw = {}
        for f in fields(cls):
            if f.name in d:
                v = d[f.name]
                if _is_tuple(f) and v is not None:
                    v = tuple(int(x) for x in v)
                kw[f.name] = v
        return cls(**kw)

    def replace(self, **changes) -> "TrialConfig":
        return dataclasses.replace(self, **changes)

    # Fields that change how a trial runs but not what it computes: left out of the run id.
    _NOT_IN_ID = frozenset({"data_root", "num_workers", "device", "compile", "cudnn_benchmark",
                            "eval_batch_size", "keep_epochs", "save_selection"})

    def run_id(self) -> str:
        """Stable id: a hash of the fields that differ from the defaults, after method defaults
        are filled in, so `--k 0.5` and the edge-popup default name the same trial."""
        base = TrialConfig()
        mine, theirs = self._identity(), base._identity()
        diff = {k: v for k, v in sorted(mine.items()) if theirs.get(k) != v and
                k not in self._NOT_IN_ID}
        digest = hashlib.sha1(json.dumps(diff, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.method}-{self.model}-{digest}"

    def _identity(self) -> dict[str, Any]:
        d = self.to_dict()
        d["k"], d["K"], d["lr"] = self.keep, self.num_values, self.learning_rate
        d["init"], d["eval_mode"] = self.resolved_init, self.resolved_eval_mode
        return d

    # --- CLI ------------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One flag per field, kebab case (`--width-mult`, `--K`, `--k`), with defaults in help.
        Choices are validated by `validate` (so the message names the field and the values)."""
        for f in fields(cls):
            flag = "--" + f.name.replace("_", "-")
            help_ = f"{f.metadata.get('help', '')} (default: {f.default if f.default is not dataclasses.MISSING else f.default_factory()})"
            if "choices" in f.metadata:
                help_ += " {" + ",".join(f.metadata["choices"]()) + "}"
            base = _base_type(f)
            if base is bool:
                parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                    default=None, help=help_)
            elif _is_tuple(f):
                parser.add_argument(flag, dest=f.name, type=int, nargs="*", default=None,
                                    help=help_)
            else:
                parser.add_argument(flag, dest=f.name, type=base, default=None, help=help_,
                                    metavar=f.name.upper() if f.name != "K" else "K")

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> "TrialConfig":
        d = {f.name: getattr(ns, f.name) for f in fields(cls) if getattr(ns, f.name, None) is not None}
        return cls.from_dict(d)


def _is_tuple(f: dataclasses.Field) -> bool:
    return "tuple" in str(f.type)


def _base_type(f: dataclasses.Field):
    t = str(f.type)
    for name, typ in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if t.startswith(name):
            return typ
    return str


def field_names() -> list[str]:
    return [f.name for f in fields(TrialConfig)]
