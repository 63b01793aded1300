"""The bottom of hiddenlab: registries, `ConfigError` and the one typed description of a trial.

Nothing here imports the rest of hiddenlab. The packages above fill the registries when they are
imported (`hiddenlab/__init__.py` imports them all, so any `import hiddenlab...` sees them full):
`models` adds model families and selection methods, `data` data sets and loaders.

`TrialConfig` = the shared fields of every trial + `options`, the selection method's own options
dataclass (declared in the method's file). Its interface is flat: `to_dict()` / `from_dict()`, the
CLI flags and the Ray Tune search space name method options like any other field (`k`, `K`), and a
field the method does not take is refused, naming the method and what it takes. Fields marked
`recipe` default to the method's published recipe (the method file says which values); after
construction every field holds its resolved value, so `cfg.lr` is the rate the trial trains with.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import os
import typing
from dataclasses import dataclass, fields
from typing import Any, Generic, Iterator, Mapping, TypeVar


class ConfigError(ValueError):
    """A field has a value outside what is allowed. The message names the field."""

    def __init__(self, field_name: str, message: str):
        self.field, self.message = field_name, message
        super().__init__(f"{field_name}: {message}")

    def __reduce__(self):  # pickled and copied whole (Ray hands errors between processes)
        return type(self), (self.field, self.message)


# --- registries ------------------------------------------------------------------------------------
T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> entries, filled by the package that defines the entries. `get` refuses an unknown
    name with a ConfigError naming the field and every allowed name."""

    def __init__(self, field: str):
        self.field = field
        self._entries: dict[str, T] = {}
        self.default: str | None = None  # the entry a config gets when it names none

    def add(self, name: str, entry: T) -> T:
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.field} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str, *default: T) -> T:
        """The entry of `name`; an unknown name is refused unless a default is given (as
        `Mapping.get`, so a registry can stand where a dict is expected)."""
        if name not in self._entries:
            if default:
                return default[0]
            raise ConfigError(self.field, f"{name!r} is not one of {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self):
        return self._entries.items()

    def values(self):
        return self._entries.values()

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


METHODS: Registry = Registry("method")          # models/selection: one file per method
MODELS: Registry = Registry("model")            # models: ModelSpec per name
INITS: Registry = Registry("init")              # models/inits.py: weight distributions
SCORE_INITS: Registry = Registry("score_init")  # models/inits.py: score distributions
DATASETS: Registry = Registry("dataset")        # data/datasets.py
LOADERS: Registry = Registry("loader")          # data/loaders


# --- fields ------------------------------------------------------------------------------------------
RECIPE = None  # the default of a `recipe` field: the method's recipe fills it in


def param(default, help: str, *, choices: Registry | typing.Sequence[str] | None = None,
          ge: float | None = None, gt: float | None = None, le: float | None = None,
          lt: float | None = None, recipe: bool = False, identity: bool = True):
    """A config field with its CLI help, allowed values and finite range. `recipe`: the default
    is the method's recipe. `identity=False`: how a trial runs, not what it computes (left out of
    the run id)."""
    meta = dict(help=help, choices=choices, ge=ge, gt=gt, le=le, lt=lt, recipe=recipe,
                identity=identity)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def kind_of(f: dataclasses.Field) -> str:
    """'bool' | 'int' | 'float' | 'str' | 'tuple' from the annotation (strings under
    `from __future__ import annotations`, or the types themselves)."""
    t = f.type if isinstance(f.type, str) else \
        f.type.__name__ if isinstance(f.type, type) else str(f.type)
    if "tuple" in t:
        return "tuple"
    for name in ("bool", "int", "float", "str"):
        if t.startswith(name):
            return name
    return "str"


def optional(f: dataclasses.Field) -> bool:
    return "None" in str(f.type) and not f.metadata.get("recipe")


def allowed(f: dataclasses.Field) -> list[str] | None:
    choices = f.metadata.get("choices")
    if choices is None:
        return None
    return choices.names() if isinstance(choices, Registry) else list(choices)


def check_value(f: dataclasses.Field, value: Any) -> Any:
    """The value of field `f` checked (type, finite, range, allowed names) and normalised (ints
    as floats for float fields, lists as tuples); ConfigError otherwise."""
    name, kind = f.name, kind_of(f)
    if value is None:
        if optional(f) or f.metadata.get("recipe"):
            return None
        raise ConfigError(name, f"needs a value ({kind})")
    if kind == "tuple":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or \
                not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
            raise ConfigError(name, f"{value!r} is not a list of integers")
        value = tuple(value)
        items = value
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(name, f"{value!r} is not true or false")
        return value
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(name, f"{value!r} is not an integer")
        items = (value,)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(name, f"{value!r} is not a number")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(name, f"{value} is not a finite number")
        items = (value,)
    else:
        if not isinstance(value, str):
            raise ConfigError(name, f"{value!r} is not a string")
        names = allowed(f)
        if names is not None and value not in names:
            raise ConfigError(name, f"{value!r} is not one of {', '.join(names)}")
        return value
    for x in items:
        _check_range(f, x)
    return value


def _check_range(f: dataclasses.Field, x: float) -> None:
    m = f.metadata
    lo = m["ge"] if m.get("ge") is not None else m.get("gt")
    hi = m["le"] if m.get("le") is not None else m.get("lt")
    ok = ((m.get("ge") is None or x >= m["ge"]) and (m.get("gt") is None or x > m["gt"]) and
          (m.get("le") is None or x <= m["le"]) and (m.get("lt") is None or x < m["lt"]))
    if not ok:
        interval = ("[" if m.get("ge") is not None else "(") + \
            (f"{lo:g}" if lo is not None else "-inf") + ", " + \
            (f"{hi:g}" if hi is not None else "inf") + ("]" if m.get("le") is not None else ")")
        raise ConfigError(f.name, f"{x:g} is outside {interval}: {m.get('help', '')}")


# --- method options ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodOptions:
    """Base of a method's options dataclass (its fields are declared with `param`). `check` is for
    rules between its fields; single fields are checked from their metadata."""

    def check(self, cfg: "TrialConfig") -> None:
        pass

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def option_fields() -> dict[str, dataclasses.Field]:
    """Every method option field by name (methods may share a name, e.g. `k`, with one type)."""
    out: dict[str, dataclasses.Field] = {}
    for method in METHODS.values():
        for f in fields(method.Options):
            prev = out.get(f.name)
            if prev is not None and kind_of(prev) != kind_of(f):
                raise TypeError(f"option {f.name!r} has two types across methods")
            out.setdefault(f.name, f)
    return out


# --- the trial -------------------------------------------------------------------------------------
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine", "multistep", "sgdr")
PRECISIONS = ("fp32", "bf16")
AUGMENTS = ("auto", "none", "crop-flip", "flip")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrialConfig:
    # --- what is trained -----------------------------------------------------------------------
    method: str = param(None, "selection method (or learned weights); see `hiddenlab methods` "
                        "(default: the registry's default, edge-popup)", choices=METHODS)
    model: str = param("conv6", "network name; see `hiddenlab models`", choices=MODELS)
    depth: int | None = param(None, "conv-family depth (any even N; default: the model name's)",
                              ge=2, le=64)
    width_mult: float = param(1.0, "multiplier on every hidden width", gt=0, le=64)
    init: str = param(RECIPE, "weight distribution (frozen values, or initial weights)",
                      choices=INITS, recipe=True)
    dropout: float | None = param(None, "classifier dropout (default: the model's own)", ge=0,
                                  lt=1)

    # --- data ----------------------------------------------------------------------------------
    dataset: str = param("synthetic", "data set", choices=DATASETS)
    loader: str = param("auto", "data loader (auto: ffcv for imagenet, else gpu)",
                        choices=LOADERS)
    data_root: str | None = param(None, "data directory (default $HIDDENLAB_DATA, then "
                                  "~/.cache/hiddenlab)", identity=False)
    val_size: int | None = param(None, "images held out of train for validation (default per "
                                 "data set)", ge=1)
    augment: str = param("auto", "augmentation preset (auto: per recipe)", choices=AUGMENTS)
    subset: int | None = param(None, "use only this many training images (smoke runs)", ge=1)
    num_workers: int = param(2, "loader worker processes (torchvision/ffcv loaders)", ge=0,
                             le=256, identity=False)
    synthetic_shape: tuple[int, ...] = param((3, 32, 32), "synthetic data: image shape C H W",
                                             ge=1, le=4096)
    synthetic_classes: int = param(10, "synthetic data: number of classes", ge=2, le=100_000)
    synthetic_size: int = param(2048, "synthetic data: training images (val/test: a quarter "
                                "each)", ge=4, le=10_000_000)

    # --- optimisation (recipe fields: the method's published values unless given) -------------
    optimizer: str = param(RECIPE, "optimiser", choices=OPTIMIZERS, recipe=True)
    lr: float = param(RECIPE, "peak learning rate", gt=0, le=1e6, recipe=True)
    momentum: float = param(RECIPE, "SGD momentum / Adam beta1", ge=0, lt=1, recipe=True)
    nesterov: bool = param(RECIPE, "Nesterov momentum", recipe=True)
    weight_decay: float = param(RECIPE, "L2 weight decay on the trainable parameters (scores)",
                                ge=0, le=1, recipe=True)
    schedule: str = param(RECIPE, "learning-rate schedule", choices=SCHEDULES, recipe=True)
    warmup_epochs: float = param(RECIPE, "linear warm-up epochs (cosine)", ge=0, recipe=True)
    milestones: tuple[int, ...] = param(RECIPE, "multistep: epochs where lr is multiplied by "
                                        "gamma", ge=1, recipe=True)
    gamma: float = param(RECIPE, "multistep decay factor", gt=0, le=1, recipe=True)
    restarts: tuple[int, ...] = param(RECIPE, "sgdr: epochs where the cosine restarts", ge=1,
                                      recipe=True)
    epochs: int = param(RECIPE, "training epochs", ge=1, le=100_000, recipe=True)
    batch_size: int = param(RECIPE, "training batch size", ge=1, le=1_000_000, recipe=True)
    eval_batch_size: int = param(512, "evaluation batch size", ge=1, le=1_000_000,
                                 identity=False)
    label_smoothing: float = param(RECIPE, "cross-entropy label smoothing", ge=0, lt=1,
                                   recipe=True)
    seed: int = param(0, "random seed (weights, scores, data order, sampling)", ge=0,
                      lt=2**63)

    # --- evaluation ------------------------------------------------------------------------------
    recalibrate_bn: bool = param(True, "re-estimate BatchNorm statistics on the evaluation "
                                 "network before validation/test, where training samples "
                                 "networks and evaluation does not (Zhou, slot-ps)")
    recalibrate_batches: int = param(20, "training batches for BatchNorm recalibration", ge=1,
                                     le=100_000)

    # --- execution -------------------------------------------------------------------------------
    device: str = param("auto", "auto|cpu|cuda", choices=DEVICES, identity=False)
    precision: str = param("fp32", "fp32 or bf16 autocast", choices=PRECISIONS)
    channels_last: bool = param(True, "channels-last memory format on CUDA", identity=False)
    compile: bool = param(False, "torch.compile the model", identity=False)
    cudnn_benchmark: bool = param(True, "cudnn autotuning on CUDA", identity=False)
    threads: int | None = param(None, "CPU threads of this trial (default: its Ray CPUs, or "
                                "every core in the foreground)", ge=1, le=4096, identity=False)
    keep_epochs: tuple[int, ...] = param((), "keep checkpoints of these epochs (finetune "
                                         "parents)", ge=1, identity=False)
    save_selection: bool = param(True, "save histograms of selected/unselected weights at the "
                                 "end", identity=False)

    # --- the method's own options (see `hiddenlab methods`) -------------------------------------
    options: MethodOptions = dataclasses.field(default=None, compare=True, repr=True,
                                               metadata={"help": "method options"})

    # ------------------------------------------------------------------------------------------
    def __post_init__(self):
        if self.method is None:
            object.__setattr__(self, "method", METHODS.default)
        method = METHODS.get(self.method)
        opts = self.options if self.options is not None else method.Options()
        if not isinstance(opts, method.Options):
            raise ConfigError("method", f"options {type(opts).__name__} are not {self.method}'s")
        object.__setattr__(self, "options", opts)
        for f in _shared_fields():
            object.__setattr__(self, f.name, check_value(f, getattr(self, f.name)))
        for f in fields(opts):
            object.__setattr__(opts, f.name, check_value(f, getattr(opts, f.name)))
        self._fill_recipe(method)
        self._check_together()
        opts.check(self)

    def _fill_recipe(self, method) -> None:
        given = {f.name: getattr(self, f.name) for f in _recipe_fields()
                 if getattr(self, f.name) is not None}
        recipe = method.recipe(self, given)
        missing = [f.name for f in _recipe_fields() if f.name not in recipe]
        if missing:
            raise TypeError(f"{self.method}'s recipe gives no {', '.join(missing)}")
        recipe = fit_schedule({**recipe, **given}, recipe["epochs"], set(given))
        for f in _recipe_fields():
            if getattr(self, f.name) is None:
                object.__setattr__(self, f.name, check_value(f, recipe[f.name]))

    def _check_together(self) -> None:
        """Rules between shared fields: schedule points inside the epochs, depth where a
        model has one."""
        spec = MODELS.get(self.model)
        if self.depth is not None:
            if not spec.takes_depth:
                raise ConfigError("depth", f"model {self.model!r} has no depth; only the conv "
                                  "families (conv*, slot-conv*) take one")
            if self.depth % 2:
                raise ConfigError("depth", f"{self.depth} is not an even number >= 2")
        if len(self.synthetic_shape) != 3:
            raise ConfigError("synthetic_shape", f"{list(self.synthetic_shape)} is not three "
                              "sizes C H W")
        last = self.epochs
        for name, used_by in (("restarts", "sgdr"), ("milestones", "multistep")):
            points = getattr(self, name)
            if points and self.schedule != used_by:
                raise ConfigError(name, f"only the {used_by} schedule takes {name} (schedule "
                                  f"is {self.schedule}); give --{name} with nothing after it")
            bad = [p for p in points if not 0 < p < last]
            if bad:
                raise ConfigError(name, f"{bad} outside 1..{last - 1} (epochs is {last})")
        if self.warmup_epochs and self.schedule != "cosine":
            raise ConfigError("warmup_epochs", f"only the cosine schedule warms up (schedule is "
                              f"{self.schedule})")
        if self.warmup_epochs >= last:
            raise ConfigError("warmup_epochs", f"{self.warmup_epochs:g} must be < epochs "
                              f"({last})")
        bad = [e for e in self.keep_epochs if e > last]
        if bad:
            raise ConfigError("keep_epochs", f"{bad} beyond the last epoch ({last})")

    # --- the method -----------------------------------------------------------------------------
    @property
    def method_spec(self):
        return METHODS.get(self.method)

    def __getattr__(self, name: str):
        # Method options read like fields (`cfg.k`, `cfg.K`); only those the method takes.
        if name.startswith("_") or name == "options":
            raise AttributeError(name)
        opts = self.__dict__.get("options")
        if opts is not None and name in opts.field_names():
            return getattr(opts, name)
        raise AttributeError(f"{type(self).__name__} of method {self.__dict__.get('method')!r} "
                             f"has no field {name!r}")

    @property
    def keep(self) -> float:
        """Fraction of connections the method keeps (1 where it keeps all)."""
        return self.method_spec.kept_fraction(self.options)

    @property
    def num_values(self) -> int:
        """Values per connection (K for slot machines, else 1)."""
        return self.method_spec.values_per_connection(self.options)

    @property
    def eval_label(self) -> str:
        """How the method selects at evaluation (argmax, expected, sample, deterministic)."""
        return self.method_spec.eval_mode(self.options)

    # --- identity --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Flat: shared fields and the method's options side by side (tuples as lists)."""
        d = {f.name: getattr(self, f.name) for f in _shared_fields()}
        d.update({f.name: getattr(self.options, f.name) for f in fields(self.options)})
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrialConfig":
        """From a flat dict (shared fields and the method's options side by side)."""
        return cls(**d)

    @classmethod
    def from_record(cls, d: Mapping[str, Any]) -> "TrialConfig":
        """From a stored row or Ray config: keys that are neither shared fields nor the method's
        options (bookkeeping, other methods' empty option columns) are ignored."""
        method = METHODS.get(d.get("method") or METHODS.default)
        keep = _SHARED | set(method.Options.field_names())
        return cls(**{k: v for k, v in d.items() if k in keep})

    def replace(self, **changes) -> "TrialConfig":
        """A copy with `changes` (flat names). A new method starts from its own recipe: only the
        shared fields outside the recipe carry over."""
        if changes.get("method", self.method) != self.method:
            keep = {f.name: getattr(self, f.name) for f in _shared_fields()
                    if not f.metadata.get("recipe")}
            return TrialConfig.from_dict({**keep, **changes})
        return TrialConfig.from_dict({**self.to_dict(), **changes})

    def run_id(self) -> str:
        """`method-model-hash`: a hash of the resolved fields that differ from the method's own
        defaults, so `--k 0.5` and edge-popup's default k name one trial and a new field with a
        default changes no id. Fields that change how a trial runs, not what it computes
        (`identity=False`), are left out."""
        mine, base = self._identity(), _default_identity(self.method)
        diff = {k: v for k, v in sorted(mine.items()) if base.get(k) != v}
        digest = hashlib.sha1(json.dumps(diff, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.method}-{self.model}-{digest}"

    def _identity(self) -> dict[str, Any]:
        out = {}
        for f in (*_shared_fields(), *fields(self.options)):
            if f.metadata.get("identity", True):
                v = getattr(self, f.name) if f.name in _SHARED else getattr(self.options, f.name)
                out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    # --- CLI --------------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, method: str | None = None) -> None:
        """One flag per field (kebab case: `--width-mult`, `--K`, `--k`), with `method`'s
        defaults in the help. Every method's options get a flag, so an option the method does not
        take reaches `from_dict` and is refused there naming the method; only `method`'s are
        shown. Values are checked by the config (messages name the field)."""
        method = method if method in METHODS else METHODS.default
        defaults = cls(method=method).to_dict()
        spec = METHODS.get(method)
        own = {f.name: f for f in fields(spec.Options)}
        for f in (*_shared_fields(), *option_fields().values()):
            f = own.get(f.name, f)  # an option several methods share: this method's help
            shown = f.name in _SHARED or f.name in own
            help_ = argparse.SUPPRESS
            if shown:
                default = defaults.get(f.name)
                where = f" ({method} recipe)" if f.metadata.get("recipe") else ""
                help_ = f"{f.metadata.get('help', '')} [default: {_show(default)}{where}]"
                names = allowed(f)
                if names is not None:
                    help_ += " {" + ",".join(names) + "}"
            _add_flag(parser, f, help_)

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> "TrialConfig":
        names = [f.name for f in _shared_fields()] + list(option_fields())
        return cls.from_dict({n: getattr(ns, n) for n in names if getattr(ns, n, None) is not
                              None})


_SHARED: frozenset[str] = frozenset()


def fit_schedule(values: dict[str, Any], recipe_epochs: int, given: set[str]) -> dict[str, Any]:
    """Recipe schedule points fitted to what was given: points of a schedule not in use are
    dropped, and with other epochs than the recipe's, restarts, milestones and warm-up keep
    their place in the run (SGDR at 25 and 75 of 200 becomes 5 and 15 of 40). Given points are
    never changed."""
    out = dict(values)
    epochs, schedule = out["epochs"], out["schedule"]
    for name, used_by in (("restarts", "sgdr"), ("milestones", "multistep")):
        if name in given:
            continue
        if schedule != used_by:
            out[name] = ()
        elif epochs != recipe_epochs:
            out[name] = tuple(sorted({round(p * epochs / recipe_epochs) for p in out[name]} &
                                     set(range(1, epochs))))
    if "warmup_epochs" not in given:
        if schedule != "cosine":
            out["warmup_epochs"] = 0.0
        elif epochs != recipe_epochs:
            out["warmup_epochs"] = out["warmup_epochs"] * epochs / recipe_epochs
    return out


def _shared_fields() -> tuple[dataclasses.Field, ...]:
    return _SHARED_FIELDS


_SHARED_FIELDS = tuple(f for f in fields(TrialConfig) if f.name != "options")
_SHARED = frozenset(f.name for f in _SHARED_FIELDS)


@functools.lru_cache(maxsize=None)
def _default_identity_json(method: str) -> str:
    return json.dumps(TrialConfig(method=method)._identity())


def _default_identity(method: str) -> dict[str, Any]:
    return json.loads(_default_identity_json(method))


_generated_init = TrialConfig.__init__


def _flat_init(self, **kw) -> None:
    """`TrialConfig(method="slot-gs", K=16, lr=0.1)`: method options by name, beside the shared
    fields. An option the method does not take, or an unknown name, is refused naming the
    fields it could have been."""
    if "options" in kw:
        return _generated_init(self, **kw)
    method = METHODS.get(kw.get("method") or METHODS.default)
    taken = set(method.Options.field_names())
    for key in kw:
        if key in _SHARED or key in taken:
            continue
        if key in option_fields():
            users = [m.name for m in METHODS.values() if key in m.Options.field_names()]
            raise ConfigError(key, f"method {method.name} does not take {key} (it takes "
                              f"{', '.join(sorted(taken)) or 'no options'}; {key} belongs to "
                              f"{', '.join(users)})")
        raise ConfigError(key, f"unknown field; fields: {', '.join(sorted(_SHARED))}; "
                          f"{method.name} options: {', '.join(sorted(taken)) or 'none'}")
    options = method.Options(**{k: _tuple(v) for k, v in kw.items() if k in taken})
    _generated_init(self, **{k: _tuple(v) for k, v in kw.items() if k in _SHARED},
                    options=options)


TrialConfig.__init__ = _flat_init


def _recipe_fields() -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in _SHARED_FIELDS if f.metadata.get("recipe"))


def _default(name: str):
    if name == "method":
        return METHODS.default
    return TrialConfig.__dataclass_fields__[name].default


def _tuple(v):
    return tuple(v) if isinstance(v, list) else v


def _show(v) -> str:
    if isinstance(v, (list, tuple)):
        return " ".join(map(str, v)) or "none"
    return str(v)


def _add_flag(parser: argparse.ArgumentParser, f: dataclasses.Field, help_: str) -> None:
    flag = "--" + f.name.replace("_", "-")
    kind = kind_of(f)
    if kind == "bool":
        parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                            default=None, help=help_)
    elif kind == "tuple":
        parser.add_argument(flag, dest=f.name, type=int, nargs="*", default=None, help=help_)
    else:
        parser.add_argument(flag, dest=f.name, type={"int": int, "float": float}.get(kind, str),
                            default=None, help=help_,
                            metavar=f.name if f.name == "K" else f.name.upper())


def field_names() -> list[str]:
    """Every flat field name: shared fields, then every method's options."""
    return [f.name for f in _SHARED_FIELDS] + list(option_fields())


def all_fields() -> dict[str, dataclasses.Field]:
    """Flat name -> dataclass field (shared and every method option)."""
    return {**{f.name: f for f in _SHARED_FIELDS}, **option_fields()}


def plugins_from_env() -> list[str]:
    """Modules named in $HIDDENLAB_PLUGINS (comma-separated): extra methods, models, data sets
    registered by their own import (see docs/plugins.md)."""
    return [m.strip() for m in os.environ.get("HIDDENLAB_PLUGINS", "").split(",") if m.strip()]
