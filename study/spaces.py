"""Search spaces built from `TrialConfig` fields, expanded and validated before Ray starts.

A study is a list of *phases* (run one after the other: the finetune trials of Slot Machines
need their parents first); a phase is a list of *series* (one line or bar of a figure); a series
is a grid over TrialConfig fields: `fixed` values, `axes` (field -> list of values, crossed),
the seeds, and optionally `derive` (fields computed from the others, e.g. Fig 5's k from the
width) and `where` (drop points, e.g. k > 1). `ChildSeries` makes finetune trials from the
trials of an earlier phase.

Every point becomes a `TrialConfig` here, so a bad value is refused (ConfigError names the field)
before Ray is involved. The Ray Tune `param_space` is then one `tune.grid_search` over the run
ids, every TrialConfig field a key of the trial's config (constants as plain values, varying
fields looked up by run id), so Ray's own tables show every field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from hiddenlab.config import METHODS, ConfigError, TrialConfig, all_fields, field_names, kind_of

Point = dict[str, Any]
SCALES = ("smoke", "paper")

# Keys of a Ray trial config that are not TrialConfig fields.
META_KEYS = ("run_id", "study", "scale", "phase", "series", "parent_run_id")


# --- typed parsing of field values (for --set FIELD=VALUE) ---------------------------------------
def _field(name: str) -> dataclasses.Field:
    f = all_fields().get(name)
    if f is None:
        raise ConfigError(name, f"unknown field; known fields: {', '.join(field_names())}")
    return f


def parse_value(name: str, text: str) -> Any:
    """Parse `text` as the type of TrialConfig field `name` (None/none for optional fields,
    comma-separated integers for tuple fields, true/false for booleans)."""
    f = _field(name)
    kind = kind_of(f)
    s = text.strip()
    if "None" in str(f.type) and s.lower() in ("none", "null", ""):
        return None
    try:
        if kind == "tuple":
            return tuple(int(x) for x in s.replace(",", " ").split())
        if kind == "bool":
            if s.lower() in ("1", "true", "yes", "on"):
                return True
            if s.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(s)
        if kind == "int":
            return int(s)
        if kind == "float":
            return float(s)
    except ValueError:
        raise ConfigError(name, f"{text!r} is not a valid {kind}") from None
    return s


def parse_overrides(items: Iterable[str] | Mapping[str, Any] | None) -> Point:
    """`["epochs=3", "device=cpu"]` or a mapping -> {field: typed value}; unknown fields refused."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        out = {}
        for k, v in items.items():
            _field(k)
            out[k] = parse_value(k, v) if isinstance(v, str) else v
        return out
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError("set", f"{item!r} is not FIELD=VALUE")
        k, v = item.split("=", 1)
        k = k.strip().replace("-", "_")
        if k == "seed":
            raise ConfigError(k, "is set by the study (use --seeds for the number of seeds)")
        out[k] = parse_value(k, v)
    return out


def applicable(overrides: Point, method: str | None) -> Point:
    """The overrides a trial of `method` takes: every shared field, and the method's own options
    (`--set k=0.3` sets edge-popup's k and leaves the dense baselines of a study alone)."""
    taken = set(METHODS.get(method or METHODS.default)
                .Options.field_names())
    shared = {f.name for f in dataclasses.fields(TrialConfig)}
    return {k: v for k, v in overrides.items() if k in shared or k in taken}


# --- series ------------------------------------------------------------------------------------
@dataclass
class Series:
    """One line/bar of a figure: `fixed` fields x the product of `axes` x the seeds."""

    label: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    axes: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    derive: Callable[[Point], Point] | None = None
    where: Callable[[Point], bool] | None = None
    seeded: bool = True

    def points(self, seeds: Sequence[int], overrides: Point) -> list[Point]:
        for name in list(self.fixed) + list(self.axes):
            _field(name)
        for name, values in self.axes.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                raise ConfigError(name, f"axis values must be a list, got {values!r}")
            if len(list(values)) == 0:
                raise ConfigError(name, f"axis of series {self.label!r} is empty")
        names = list(self.axes)
        out = []
        for combo in itertools.product(*(list(self.axes[n]) for n in names)):
            for seed in (seeds if self.seeded else [None]):
                p = dict(self.fixed)
                p.update(zip(names, combo))
                if seed is not None:
                    p["seed"] = seed
                p.update(applicable(overrides, p.get("method")))
                if self.derive is not None:
                    p.update(self.derive(dict(p)))
                if self.where is not None and not self.where(dict(p)):
                    continue
                out.append(p)
        return out


@dataclass
class ChildSeries:
    """Child trials (e.g. finetuning) made from the trials of earlier series (`parents`: their
    labels): one child per parent x start epoch. `fixed` names the child's method, which says
    what a child inherits from its parent (its `inherits`: model and data fields, seed
    included) and how it links to it (`child_fields`); then `derive(point, parent_cfg)` (e.g.
    epochs = budget - E). The parent must keep the start epochs (`keep_epochs`)."""

    label: str
    parents: Sequence[str]
    start_epochs: Sequence[int]
    fixed: Mapping[str, Any]
    derive: Callable[[Point, TrialConfig], Point] | None = None
    parent_filter: Callable[[TrialConfig], bool] | None = None   # which parents get children

    def points(self, parents: Sequence["PlannedTrial"], overrides: Point,
               parent_dir: Callable[[str], str]) -> list[tuple[Point, "PlannedTrial"]]:
        for name in self.fixed:
            _field(name)
        if "method" not in self.fixed:
            raise ConfigError("method", f"series {self.label!r}: a child series names its "
                              "method in `fixed`")
        method = METHODS.get(self.fixed["method"])
        out = []
        for parent in parents:
            pcfg = parent.cfg
            if self.parent_filter is not None and not self.parent_filter(pcfg):
                continue
            for epoch in self.start_epochs:
                if epoch not in pcfg.keep_epochs:
                    raise ConfigError("keep_epochs", f"series {self.label!r} starts at epoch "
                                      f"{epoch} of {parent.run_id}, which keeps only "
                                      f"{list(pcfg.keep_epochs)}")
                p = {name: getattr(pcfg, name) for name in method.inherits}
                p.update(self.fixed)
                p.update(applicable(overrides, method.name))
                p.update(method.child_fields(parent_dir(parent.run_id), epoch))
                if self.derive is not None:
                    p.update(self.derive(dict(p), pcfg))
                out.append((p, parent))
        return out


@dataclass
class Phase:
    name: str
    series: list[Series | ChildSeries]


# --- plans ---------------------------------------------------------------------------------------
@dataclass
class PlannedTrial:
    cfg: TrialConfig
    run_id: str
    series: str
    phase: str
    parent_run_id: str | None = None

    def ray_config(self, study: str, scale: str) -> dict[str, Any]:
        d = self.cfg.to_dict()
        d.update(run_id=self.run_id, study=study, scale=scale, phase=self.phase,
                 series=self.series, parent_run_id=self.parent_run_id)
        return d


@dataclass
class PhasePlan:
    name: str
    trials: list[PlannedTrial]

    def digest(self) -> str:
        ids = sorted(t.run_id for t in self.trials)
        return hashlib.sha1(json.dumps(ids).encode()).hexdigest()[:8]


@dataclass
class Plan:
    study: str
    scale: str
    seeds: list[int]
    phases: list[PhasePlan]

    @property
    def trials(self) -> list[PlannedTrial]:
        return [t for p in self.phases for t in p.trials]

    def __len__(self) -> int:
        return len(self.trials)


def _make_cfg(point: Point, where: str) -> TrialConfig:
    try:
        return TrialConfig.from_dict(point)
    except ConfigError as e:
        raise ConfigError(e.field, f"{str(e).split(': ', 1)[-1]} (in {where})") from None
    except TypeError as e:  # a value of the wrong type that the dataclass itself rejects
        raise ConfigError("config", f"{e} (in {where})") from None


def expand(study: str, phases: Sequence[Phase], scale: str, seeds: Sequence[int],
           overrides: Point | None = None,
           parent_dir: Callable[[str], str] = lambda rid: f"<storage>/checkpoints/{rid}") -> Plan:
    """Every point of every series as a validated TrialConfig; duplicates (same run id) merged."""
    overrides = dict(overrides or {})
    seen: dict[str, PlannedTrial] = {}
    by_label: dict[str, list[PlannedTrial]] = {}
    plans = []
    for phase in phases:
        trials: list[PlannedTrial] = []
        for series in phase.series:
            where_ = f"study {study}, scale {scale}, series {series.label!r}"
            made: list[PlannedTrial] = []
            if isinstance(series, ChildSeries):
                parents = [t for label in series.parents for t in by_label.get(label, [])]
                if not parents:
                    raise ConfigError("parent", f"series {series.label!r} names parents "
                                      f"{list(series.parents)} that no earlier phase defines")
                pairs = series.points(parents, overrides, parent_dir)
            else:
                pairs = [(p, None) for p in series.points(seeds, overrides)]
            for point, parent in pairs:
                cfg = _make_cfg(point, where_)
                rid = cfg.run_id()
                if rid in seen:
                    prev = seen[rid]
                    if series.label not in prev.series.split("+"):
                        prev.series += "+" + series.label
                    by_label.setdefault(series.label, []).append(prev)
                    continue
                t = PlannedTrial(cfg, rid, series.label, phase.name,
                                 parent.run_id if parent is not None else None)
                seen[rid] = t
                made.append(t)
                by_label.setdefault(series.label, []).append(t)
            trials.extend(made)
        plans.append(PhasePlan(phase.name, trials))
    taken = {k for t in seen.values() for k in t.cfg.to_dict()}
    for key in overrides:
        if key not in taken:
            methods = sorted({t.cfg.method for t in seen.values()})
            raise ConfigError(key, f"no trial of study {study} takes {key} (its methods: "
                              f"{', '.join(methods)})")
    return Plan(study, scale, list(seeds), plans)


# --- Ray Tune param_space ------------------------------------------------------------------------
class _Lookup:
    """`tune.sample_from` callable: the value of one field for the trial's run id."""

    def __init__(self, table: dict[str, dict[str, Any]], name: str):
        self.table, self.name = table, name

    def __call__(self, config):
        return self.table[config["run_id"]].get(self.name)


def param_space(trials: Sequence[PlannedTrial], study: str, scale: str) -> dict[str, Any]:
    """One grid over the run ids; every TrialConfig field (and the meta keys) a config key."""
    from ray import tune

    if not trials:
        raise ValueError("no trials to run")
    table = {t.run_id: t.ray_config(study, scale) for t in trials}
    keys = list(dict.fromkeys(k for row in table.values() for k in row))  # methods differ
    space: dict[str, Any] = {"run_id": tune.grid_search([t.run_id for t in trials])}
    for key in keys:
        if key == "run_id":
            continue
        values = {json.dumps(row.get(key), sort_keys=True) for row in table.values()}
        if len(values) == 1 and all(key in row for row in table.values()):
            space[key] = next(iter(table.values()))[key]
        else:
            space[key] = tune.sample_from(_Lookup(table, key))
    return space


def config_from_ray(config: Mapping[str, Any]) -> TrialConfig:
    """The TrialConfig of a Ray trial config (meta keys and other methods' options dropped);
    checks the run id."""
    cfg = TrialConfig.from_record(config)
    rid = config.get("run_id")
    if rid is not None and rid != cfg.run_id():
        raise ConfigError("run_id", f"config names {rid} but its fields hash to {cfg.run_id()}")
    return cfg


def varying_fields(trials: Sequence[PlannedTrial]) -> list[str]:
    """TrialConfig fields whose value differs between trials (for compact tables)."""
    if not trials:
        return []
    out = []
    for name in field_names():
        vals = {json.dumps(t.cfg.to_dict().get(name), sort_keys=True, default=str)
                for t in trials}
        if len(vals) > 1:
            out.append(name)
    return out
