"""Search spaces built from `TrialConfig` fields, expanded and validated before Ray starts.

A study is a list of *phases* (run one after the other: the finetune trials of Slot Machines
need their parents first); a phase is a list of *series* (one line or bar of a figure); a series
is a grid over TrialConfig fields: `fixed` values, `axes` (field -> list of values, crossed),
the seeds, `sample` (fields drawn by Ray Tune: `loguniform(1e-3, 1)`, `choice([...])`, ...),
and optionally `derive` (fields computed from the others, e.g. Fig 5's k from the width) and
`where` (drop points, e.g. k > 1). `ChildSeries` makes finetune trials from the trials of an
earlier phase.

Every grid point becomes a `TrialConfig` here, so a bad value is refused (ConfigError names the
field) before Ray is involved. A series without sampled fields is planned trial by trial: its
Ray Tune `param_space` is one `tune.grid_search` over the run ids, every TrialConfig field a key
of the trial's config (constants as plain values, varying fields looked up by run id), so Ray's
own tables show every field. A series that samples is a `SampledSeries`: its points are unknown
before Tune draws them, so its distributions are validated instead (bounds and choices checked
against the field's range, and TrialConfigs built at the bounds and at a few draws), and its
`param_space` holds the fields themselves (constants, `tune.grid_search` per grid axis and for the
seeds, a Tune distribution per sampled field); the run id is computed inside the trial.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from hiddenlab.config import (METHODS, ConfigError, TrialConfig, all_fields, check_value,
                              field_names, kind_of)

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
        hint = " (--set gives every trial one value; for a grid or a distribution write a " \
            "study file: see the README, \"Your own study\")" if "," in s else ""
        raise ConfigError(name, f"{text!r} is not a valid {kind}{hint}") from None
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


# --- sampled fields (Ray Tune distributions) ------------------------------------------------------
# name -> (number of numeric arguments, field kinds it can draw). randint/lograndint/qrandint
# follow Tune: the upper bound is excluded. `choice` takes a list of values of any kind.
DISTRIBUTIONS: dict[str, tuple[int, tuple[str, ...]]] = {
    "uniform": (2, ("float",)), "loguniform": (2, ("float",)),
    "quniform": (3, ("float",)), "qloguniform": (3, ("float",)),
    "randint": (2, ("int", "float")), "lograndint": (2, ("int", "float")),
    "qrandint": (3, ("int", "float")), "choice": (0, ("int", "float", "bool", "str", "tuple")),
}


@dataclass(frozen=True)
class Sample:
    """A TrialConfig field drawn by Ray Tune: `Sample("loguniform", (1e-3, 1.0))`,
    `Sample("choice", ([2, 4, 8],))`. `check(field)` refuses a distribution the field cannot
    take (kind, bounds outside its range) before anything runs."""

    kind: str
    args: tuple

    def __post_init__(self):
        if self.kind not in DISTRIBUTIONS:
            raise ConfigError("sample", f"{self.kind!r} is not a distribution; known: "
                              f"{', '.join(DISTRIBUTIONS)}")

    @property
    def values(self) -> list:
        return list(self.args[0]) if self.kind == "choice" else []

    def describe(self) -> str:
        if self.kind == "choice":
            return f"choice({self.values})"
        return f"{self.kind}({', '.join(f'{a:g}' for a in self.args)})"

    def check(self, f: dataclasses.Field) -> None:
        """Arguments well formed, the field's kind drawable, every bound inside its range."""
        name, kind = f.name, kind_of(f)
        nargs, kinds = DISTRIBUTIONS[self.kind]
        if kind not in kinds:
            what = {"int": "an integer", "float": "a number", "bool": "a true/false",
                    "str": "a name", "tuple": "a list"}[kind]
            raise ConfigError(name, f"{self.describe()}: {name} is {what} field; it takes " +
                              ", ".join(k for k, (_, ks) in DISTRIBUTIONS.items() if kind in ks))
        if self.kind == "choice":
            if len(self.args) != 1 or not isinstance(self.args[0], (list, tuple)) or \
                    not self.args[0]:
                raise ConfigError(name, "choice takes a non-empty list of values")
            for v in self.values:
                check_value(f, v)
            return
        if len(self.args) != nargs or not all(_is_number(a) for a in self.args):
            raise ConfigError(name, f"{self.kind} takes {nargs} numbers "
                              f"({'lower, upper' + (', q' if nargs == 3 else '')}), got "
                              f"{list(self.args)!r}")
        lo, hi = self.args[0], self.args[1]
        if not lo < hi:
            raise ConfigError(name, f"{self.describe()}: the lower bound must be below the upper")
        if self.kind.startswith("log") or self.kind == "qloguniform":
            if lo <= 0:
                raise ConfigError(name, f"{self.describe()}: a log scale needs bounds > 0")
        if nargs == 3 and self.args[2] <= 0:
            raise ConfigError(name, f"{self.describe()}: q must be > 0")
        if self.kind.endswith("int") and not all(float(a).is_integer() for a in self.args):
            raise ConfigError(name, f"{self.describe()}: integer bounds expected")
        for v in self.corners():
            check_value(f, v)

    def corners(self) -> list:
        """The extreme values a draw can take (every choice)."""
        if self.kind == "choice":
            return self.values
        lo, hi = self.args[0], self.args[1]
        if self.kind.endswith("int"):
            top = int(hi) - 1
            if self.kind == "qrandint":
                q = int(self.args[2])
                return [int(round(lo / q) * q), int(top // q * q) if top // q * q >= lo else
                        int(round(lo / q) * q)]
            return [int(lo), top]
        if len(self.args) == 3:
            q = self.args[2]
            return [max(lo, round(lo / q) * q), min(hi, round(hi / q) * q)]
        return [float(lo), float(hi)]

    def draw(self, rng: random.Random) -> Any:
        """One value as Tune would draw it (for validation before Ray)."""
        if self.kind == "choice":
            return rng.choice(self.values)
        lo, hi = self.args[0], self.args[1]
        if self.kind.endswith("int"):
            if self.kind == "lograndint":
                return min(int(hi) - 1, int(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
            v = rng.randrange(int(lo), int(hi))
            if self.kind == "randint":
                return v
            first, last = self.corners()
            return min(max(int(round(v / self.args[2]) * self.args[2]), first), last)
        x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if "log" in self.kind \
            else rng.uniform(lo, hi)
        if len(self.args) == 3:
            x = min(max(round(x / self.args[2]) * self.args[2], self.corners()[0]),
                    self.corners()[1])
        return x

    def tune(self):
        """The Ray Tune search-space object."""
        from ray import tune

        if self.kind == "choice":
            return tune.choice([list(v) if isinstance(v, tuple) else v for v in self.values])
        fn = getattr(tune, self.kind)
        return fn(*[int(a) if self.kind.endswith("int") else a for a in self.args])


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def uniform(lower: float, upper: float) -> Sample:
    return Sample("uniform", (lower, upper))


def loguniform(lower: float, upper: float) -> Sample:
    return Sample("loguniform", (lower, upper))


def quniform(lower: float, upper: float, q: float) -> Sample:
    return Sample("quniform", (lower, upper, q))


def randint(lower: int, upper: int) -> Sample:
    """An integer in [lower, upper): the upper bound is excluded, as in Ray Tune."""
    return Sample("randint", (lower, upper))


def choice(values: Sequence[Any]) -> Sample:
    return Sample("choice", (list(values),))


# --- series ------------------------------------------------------------------------------------
@dataclass
class Series:
    """One line/bar of a figure: `fixed` fields x the product of `axes` x the seeds, and, where
    `sample` names fields (field -> `Sample`), `num_samples` Ray Tune draws per grid point."""

    label: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    axes: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    derive: Callable[[Point], Point] | None = None
    where: Callable[[Point], bool] | None = None
    seeded: bool = True
    sample: Mapping[str, Sample] = field(default_factory=dict)

    def check_names(self) -> None:
        for name in list(self.fixed) + list(self.axes) + list(self.sample):
            _field(name)
        for name, dist in self.sample.items():
            if not isinstance(dist, Sample):
                raise ConfigError(name, f"series {self.label!r}: {dist!r} is not a "
                                  "distribution (loguniform, uniform, quniform, randint, choice)")
            if name in self.fixed or name in self.axes:
                raise ConfigError(name, f"series {self.label!r} both fixes and samples it")
            if name == "seed":
                raise ConfigError(name, "seeds are a grid (`seeds`), not sampled")
        if self.sample and self.where is not None:
            raise ConfigError("where", f"series {self.label!r} samples fields: it cannot drop "
                              "points (`where`) Tune draws later")

    def points(self, seeds: Sequence[int], overrides: Point) -> list[Point]:
        """The grid points (sampled fields left out: Tune draws them; so is `derive`, which
        then runs inside the trial)."""
        self.check_names()
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
                p.update({k: v for k, v in applicable(overrides, p.get("method")).items()
                          if k not in self.sample})
                if self.derive is not None and not self.sample:
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
class SampledSeries:
    """A series whose sampled fields Ray Tune draws: its grid `points` (fields without the
    sampled ones), its distributions and `derive` (run inside the trial, after the draw).
    `probe` is a TrialConfig built at one draw (what the trials share: method, model, epochs)."""

    label: str
    phase: str
    points: list[Point]
    sample: dict[str, Sample]
    axes: dict[str, list]
    derive: Callable[[Point], Point] | None
    probe: TrialConfig

    def count(self, num_samples: int) -> int:
        return len(self.points) * num_samples

    def digest(self) -> str:
        spec = {"points": self.points, "sample": {k: [v.kind, list(v.args)]
                                                  for k, v in sorted(self.sample.items())}}
        return hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()) \
            .hexdigest()[:8]


@dataclass
class PhasePlan:
    name: str
    trials: list[PlannedTrial]
    sampled: list[SampledSeries] = field(default_factory=list)

    def digest(self) -> str:
        ids = sorted(t.run_id for t in self.trials)
        return hashlib.sha1(json.dumps(ids).encode()).hexdigest()[:8]

    def count(self, num_samples: int = 1) -> int:
        return len(self.trials) + sum(s.count(num_samples) for s in self.sampled)


@dataclass
class Plan:
    study: str
    scale: str
    seeds: list[int]
    phases: list[PhasePlan]
    num_samples: int = 1
    tune: Any = None          # the TuneSettings it runs with (set by the runner)

    @property
    def trials(self) -> list[PlannedTrial]:
        """The trials known before Ray starts (every trial of a grid-only study)."""
        return [t for p in self.phases for t in p.trials]

    @property
    def sampled(self) -> list[SampledSeries]:
        return [s for p in self.phases for s in p.sampled]

    def __len__(self) -> int:
        """Every trial the study will run, sampled ones included."""
        return sum(p.count(self.num_samples) for p in self.phases)


def _make_cfg(point: Point, where: str) -> TrialConfig:
    try:
        return TrialConfig.from_dict(point)
    except ConfigError as e:
        raise ConfigError(e.field, f"{str(e).split(': ', 1)[-1]} (in {where})") from None
    except TypeError as e:  # a value of the wrong type that the dataclass itself rejects
        raise ConfigError("config", f"{e} (in {where})") from None


PROBE_DRAWS = 4   # random draws validated per grid point, beside the bounds


def _sampled(series: Series, phase: str, seeds: Sequence[int], overrides: Point,
             where_: str) -> SampledSeries:
    """Validate a sampling series before Ray: each distribution against its field, then a
    TrialConfig (derive applied) at every grid point x {each bound of each field, a few draws}."""
    for name, dist in series.sample.items():
        try:
            dist.check(_field(name))
        except ConfigError as e:
            raise ConfigError(e.field, f"{str(e).split(': ', 1)[-1]} (in {where_})") from None
    for name in overrides:
        if name in series.sample:
            raise ConfigError(name, f"--set fixes {name}, which series {series.label!r} "
                              f"samples (in {where_})")
    points = series.points(seeds, overrides)
    rng = random.Random(0)
    names = list(series.sample)
    probe = None
    for point in points:
        draws = [{n: series.sample[n].draw(rng) for n in names} for _ in range(PROBE_DRAWS)]
        for n in names:
            for v in series.sample[n].corners():
                draws.append({**draws[0], n: v})
        for values in draws:
            p = {**point, **values}
            if series.derive is not None:
                p.update(series.derive(dict(p)))
            cfg = _make_cfg(p, f"{where_}, with {_show(values)}")
            probe = probe or cfg
    axes = {k: list(v) for k, v in series.axes.items()}
    return SampledSeries(series.label, phase, points, dict(series.sample), axes, series.derive,
                         probe)


def _show(values: Point) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in values.items())


def expand(study: str, phases: Sequence[Phase], scale: str, seeds: Sequence[int],
           overrides: Point | None = None,
           parent_dir: Callable[[str], str] = lambda rid: f"<storage>/checkpoints/{rid}",
           num_samples: int = 1, source: str | None = None) -> Plan:
    """Every point of every series as a validated TrialConfig; duplicates (same run id) merged.
    Sampling series are validated by their distributions (`SampledSeries`). `source` (a study
    file) is named in every error."""
    overrides = dict(overrides or {})
    seen: dict[str, PlannedTrial] = {}
    by_label: dict[str, list[PlannedTrial]] = {}
    sampled_labels: set[str] = set()
    plans = []
    origin = f"{source}: " if source else ""
    for phase in phases:
        trials: list[PlannedTrial] = []
        sampled: list[SampledSeries] = []
        for series in phase.series:
            where_ = f"{origin}study {study}, scale {scale}, series {series.label!r}"
            made: list[PlannedTrial] = []
            if isinstance(series, ChildSeries):
                bad = [label for label in series.parents if label in sampled_labels]
                if bad:
                    raise ConfigError("parent", f"series {series.label!r}: parents {bad} sample "
                                      f"their fields; children need grid parents (in {where_})")
                parents = [t for label in series.parents for t in by_label.get(label, [])]
                if not parents:
                    raise ConfigError("parent", f"series {series.label!r} names parents "
                                      f"{list(series.parents)} that no earlier phase defines "
                                      f"(in {where_})")
                pairs = series.points(parents, overrides, parent_dir)
            elif series.sample:
                sampled.append(_sampled(series, phase.name, seeds, overrides, where_))
                sampled_labels.add(series.label)
                continue
            else:
                try:
                    pairs = [(p, None) for p in series.points(seeds, overrides)]
                except ConfigError as e:
                    raise ConfigError(e.field, f"{str(e).split(': ', 1)[-1]} (in {where_})") \
                        from None
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
        plans.append(PhasePlan(phase.name, trials, sampled))
    taken = {k for t in seen.values() for k in t.cfg.to_dict()}
    taken |= {k for p in plans for s in p.sampled for k in s.probe.to_dict()}
    for key in overrides:
        if key not in taken:
            methods = sorted({t.cfg.method for t in seen.values()} |
                             {s.probe.method for p in plans for s in p.sampled})
            raise ConfigError(key, f"no trial of study {study} takes {key} (its methods: "
                              f"{', '.join(methods)})")
    return Plan(study, scale, list(seeds), plans, num_samples)


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


def sampled_space(series: SampledSeries, study: str, scale: str) -> dict[str, Any]:
    """The Tune `param_space` of a sampling series: its TrialConfig fields themselves (constants,
    a `tune.grid_search` per grid axis and for the seeds, a Tune distribution per sampled
    field) and the meta keys; Tune's num_samples repeats the grid with fresh draws."""
    from ray import tune

    space: dict[str, Any] = {"study": study, "scale": scale, "phase": series.phase,
                             "series": series.label}
    grid: dict[str, list] = {}
    for key in dict.fromkeys(k for p in series.points for k in p):
        values = list({json.dumps(p.get(key), sort_keys=True, default=list): p.get(key)
                       for p in series.points}.values())
        if len(values) == 1 and all(key in p for p in series.points):
            space[key] = _plain(values[0])
        else:
            grid[key] = [_plain(v) for v in values]
    if math.prod(len(v) for v in grid.values()) != len(series.points):
        raise ConfigError("axes", f"series {series.label!r}: a sampling series needs a full grid "
                          f"(its varying fields {list(grid)} do not form one)")
    for key, values in grid.items():
        space[key] = tune.grid_search(values)
    for name, dist in series.sample.items():
        space[name] = dist.tune()
    return space


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


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
    dicts = [t.cfg.to_dict() for t in trials]
    for name in field_names():   # a method option only among the trials whose method takes it
        vals = {json.dumps(d[name], sort_keys=True, default=str) for d in dicts if name in d}
        if len(vals) > 1:
            out.append(name)
    return out
