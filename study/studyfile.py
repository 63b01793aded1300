"""Study files: a study of your own as YAML (`PATH.yaml`) or Python (`PATH.py` defining
`STUDY = Study(...)`), run like a built-in one (`hiddenlab study run PATH`).

YAML schema (every key but `series` optional)::

    name: my-sweep                 # default: the file's name; a folder name in the storage
    title: slot-ps learning rate across K
    scale: paper                   # the default scale; the file as written is `paper`
    seeds: 1                       # N (0..N-1), a list, or {smoke: 1, paper: 3}
    fixed: {dataset: digits, model: fc, epochs: 8}     # every series of the first phase
    smoke: {epochs: 2, subset: 256}                    # fields set at --scale smoke
    phase: main                    # the first phase's name
    series:
      - label: slot PS
        fixed: {method: slot-ps}
        grid: {K: [2, 8, 32]}                      # crossed, times the seeds
        sample:                                    # drawn by Ray Tune, num_samples per point
          lr: {loguniform: [1, 300]}               # also uniform, quniform [lo, hi, q],
          # randint [lo, hi) (upper excluded), lograndint, qrandint, choice: [...]
    phases:                        # later phases: children of an earlier phase's trials
      - name: finetune
        series:
          - label: finetuned
            parents: [slot PS]                     # labels of earlier series
            start_epochs: [2]                      # the parents must keep them (keep_epochs)
            parent_where: {K: 8}                   # only parents with these values
            budget: 8                              # epochs = budget - start epoch
            fixed: {method: finetune, lr: 0.05}
    tune:
      num_samples: 4
      search: random               # random|grid, optuna, hyperopt ({name: optuna, seed: 0})
      scheduler: {name: asha, grace_period: 1, reduction_factor: 2}   # fifo, hyperband, pbt,
      metric: val_acc              # median; max_t defaults to the trials' epochs
      mode: max
      max_concurrent_trials: 2
      callbacks: [csv, tensorboard, mlflow, wandb]  # or {mlflow: {tracking_uri: ...}}

Every key is checked (an unknown one is refused naming the file and where it is), and every
point becomes a TrialConfig before Ray starts (`hiddenlab.study.spaces.expand`), so an error
names the file, the series and the field.

`run_study` keeps a copy of the file in the storage (`<storage>/<name>/study.yaml` or
`study.py`), so `study show/plan/export NAME --storage S` find the study again by name.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

from hiddenlab.config import ConfigError

SUFFIXES = (".yaml", ".yml", ".py")
KEPT = ("study.yaml", "study.py")   # the copy of a study file kept in the storage
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
TOP_KEYS = {"name", "title", "scale", "seeds", "fixed", "smoke", "phase", "series", "phases",
            "tune", "notes"}
SERIES_KEYS = {"label", "fixed", "grid", "sample", "seeded"}
CHILD_KEYS = {"label", "parents", "start_epochs", "parent_where", "budget", "fixed"}


def is_study_file(name: str) -> bool:
    return isinstance(name, str) and name.endswith(SUFFIXES)


def load(path: str | os.PathLike, name: str | None = None):
    """The Study of a .yaml/.yml or .py file (`name`: the name it must have, when found in a
    storage by name)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("study", f"{path}: no such study file")
    study = _load_python(path) if path.suffix == ".py" else _load_yaml(path)
    if name is not None and study.name != name:
        raise ConfigError("study", f"{path} defines study {study.name!r}, not {name!r}")
    _check_name(study.name, str(path))
    return study


def _check_name(name: str, where: str) -> None:
    from hiddenlab.study.registry import studies

    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError("name", f"{name!r} is not a study name (letters, digits, . _ -) "
                          f"(in {where})")
    builtin = studies().get(name)
    if builtin is not None and builtin.source is None:
        raise ConfigError("name", f"{name!r} is a built-in study; choose another name "
                          f"(in {where})")


# --- YAML -----------------------------------------------------------------------------------------
def _yaml_loader():
    """YAML's safe loader, reading `1e-3` as a number (YAML 1.1 wants `1.0e-3`)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"))
    return Loader


_Loader = _yaml_loader()


def _load_yaml(path: Path):
    import yaml

    from hiddenlab.study.registry import Study
    from hiddenlab.study.tuning import TuneSettings

    try:
        doc = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as e:
        raise ConfigError("study", f"{path}: not valid YAML: {e}") from None
    where = str(path)
    if not isinstance(doc, Mapping):
        raise ConfigError("study", f"{path}: a study file is a mapping (name:, series:, ...)")
    _known(doc, TOP_KEYS, where)
    if "series" not in doc:
        raise ConfigError("series", f"a study file lists its series (in {where})")
    fixed = _mapping(doc.get("fixed"), "fixed", where)
    first = _phase(doc.get("phase", "main"), doc["series"], fixed, where)
    later = [_later_phase(p, i, where) for i, p in enumerate(_list(doc.get("phases"), "phases",
                                                                     where))]
    try:
        tune = TuneSettings.from_mapping(doc.get("tune"), "tune")
    except ConfigError as e:
        raise _in(e, where) from None
    scale = doc.get("scale", "paper")
    seeds = doc.get("seeds", 1)
    if not isinstance(seeds, (int, list, Mapping)) or isinstance(seeds, bool):
        raise ConfigError("seeds", f"{seeds!r} is not N, a list or {{smoke: N, paper: N}} "
                          f"(in {where})")
    if isinstance(seeds, Mapping):
        _known(seeds, {"smoke", "paper"}, f"{where}, seeds")
        seeds = {"smoke": seeds.get("smoke", 1), "paper": seeds.get("paper", 1)}
    return Study(name=doc.get("name", path.stem), title=str(doc.get("title", "")),
                 phases=[first, *later], default_scale=scale, seeds=seeds,
                 notes=str(doc.get("notes", "")), tune=tune,
                 smoke=_mapping(doc.get("smoke"), "smoke", where), source=str(path))


def _phase(name: Any, series: Any, fixed: Mapping[str, Any], where: str):
    from hiddenlab.study.spaces import Phase

    items = _list(series, "series", where)
    if not items:
        raise ConfigError("series", f"the first phase has no series (in {where})")
    return Phase(str(name), [_series(s, i, fixed, where) for i, s in enumerate(items)])


def _later_phase(doc: Any, index: int, where: str):
    from hiddenlab.study.spaces import Phase

    here = f"{where}, phases[{index}]"
    if not isinstance(doc, Mapping):
        raise ConfigError("phases", f"a phase is {{name:, series: [...]}} (in {here})")
    _known(doc, {"name", "series"}, here)
    items = _list(doc.get("series"), "series", here)
    if not items:
        raise ConfigError("series", f"phase has no series (in {here})")
    series = [_child(s, i, here) if isinstance(s, Mapping) and "parents" in s
              else _series(s, i, {}, here) for i, s in enumerate(items)]
    return Phase(str(doc.get("name", f"phase{index + 2}")), series)


def _series(doc: Any, index: int, fixed: Mapping[str, Any], where: str):
    from hiddenlab.study.spaces import Series

    if not isinstance(doc, Mapping):
        raise ConfigError("series", f"series {index} is not a mapping (in {where})")
    label = str(doc.get("label", f"series {index + 1}"))
    here = f"{where}, series {label!r}"
    _known(doc, SERIES_KEYS, here)
    grid = dict(_mapping(doc.get("grid"), "grid", here))
    sample = {}
    for name, spec in _mapping(doc.get("sample"), "sample", here).items():
        dist = _distribution(name, spec, here)
        if isinstance(dist, list):
            grid[name] = dist
        else:
            sample[name] = dist
    for name, values in grid.items():
        if not isinstance(values, list):
            raise ConfigError(name, f"grid values are a list, got {values!r} (in {here})")
    return Series(label, {**fixed, **_mapping(doc.get("fixed"), "fixed", here)}, grid,
                  seeded=bool(doc.get("seeded", True)), sample=sample)


def _distribution(name: str, spec: Any, where: str):
    """`{loguniform: [1e-3, 1]}` -> Sample; a plain list or `{grid_search: [...]}` -> grid."""
    from hiddenlab.study.spaces import DISTRIBUTIONS, Sample

    if isinstance(spec, list):
        return spec
    if isinstance(spec, Mapping) and len(spec) == 1:
        kind, args = next(iter(spec.items()))
        if kind == "grid_search" and isinstance(args, list):
            return args
        if kind in DISTRIBUTIONS:
            if kind == "choice":
                return Sample(kind, (args,))
            if not isinstance(args, list):
                raise ConfigError(name, f"{kind} takes a list [lower, upper] (in {where})")
            return Sample(kind, tuple(args))
    raise ConfigError(name, f"{spec!r} is not a distribution: one of "
                      f"{', '.join(DISTRIBUTIONS)} as {{name: [args]}}, or a list (a grid) "
                      f"(in {where})")


def _child(doc: Mapping[str, Any], index: int, where: str):
    from hiddenlab.study.spaces import ChildSeries

    label = str(doc.get("label", f"series {index + 1}"))
    here = f"{where}, series {label!r}"
    _known(doc, CHILD_KEYS, here)
    parents = _list(doc.get("parents"), "parents", here)
    starts = _list(doc.get("start_epochs"), "start_epochs", here)
    if not starts or not all(isinstance(e, int) and not isinstance(e, bool) for e in starts):
        raise ConfigError("start_epochs", f"a list of epochs is needed (in {here})")
    budget = doc.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or
                               budget <= max(starts)):
        raise ConfigError("budget", f"{budget!r} must be an integer above every start epoch "
                          f"(in {here})")
    parent_where = dict(_mapping(doc.get("parent_where"), "parent_where", here))
    return ChildSeries(label, [str(p) for p in parents], starts,
                       dict(_mapping(doc.get("fixed"), "fixed", here)),
                       derive=Budget(budget) if budget is not None else None,
                       parent_filter=ParentWhere(parent_where) if parent_where else None)


class Budget:
    """A child's epochs: what is left of `budget` after its start epoch."""

    def __init__(self, budget: int):
        self.budget = budget

    def __call__(self, point: dict, parent) -> dict:
        return {"epochs": self.budget - point["parent_epoch"]}


class ParentWhere:
    """Parents whose fields equal the given values get children."""

    def __init__(self, values: Mapping[str, Any]):
        self.values = dict(values)

    def __call__(self, parent_cfg) -> bool:
        return all(getattr(parent_cfg, k, None) == v for k, v in self.values.items())


def _known(doc: Mapping[str, Any], keys: set[str], where: str) -> None:
    unknown = sorted(set(doc) - keys)
    if unknown:
        raise ConfigError(str(unknown[0]), f"unknown key; here the keys are "
                          f"{', '.join(sorted(keys))} (in {where})")


def _mapping(value: Any, key: str, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"{value!r} is not a mapping of FIELD: VALUE (in {where})")
    return value


def _list(value: Any, key: str, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(key, f"{value!r} is not a list (in {where})")
    return value


def _in(e: ConfigError, where: str) -> ConfigError:
    return ConfigError(e.field, f"{str(e).split(': ', 1)[-1]} (in {where})")


# --- Python ---------------------------------------------------------------------------------------
def _load_python(path: Path):
    from hiddenlab.study.registry import Study

    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    modname = f"hiddenlab_study_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(modname, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except ConfigError as e:
        raise _in(e, str(path)) from None
    study = getattr(module, "STUDY", None)
    if not isinstance(study, Study):
        raise ConfigError("study", f"{path} defines no STUDY = Study(...)")
    # Its functions (derive, filters) travel to Ray's workers by value: they cannot import a
    # module that lives only in this process.
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    study.source = str(path)
    return study


# --- the copy kept in the storage ----------------------------------------------------------------
def keep(study, storage) -> None:
    """Copy the study's file into the storage (`<storage>/<name>/study.yaml|.py`)."""
    if study.source is None:
        return
    kept = "study.py" if study.source.endswith(".py") else "study.yaml"
    storage.write_bytes(Path(study.source).read_bytes(), study.name, kept)


def kept_file(storage: str, name: str) -> str | None:
    """A local path to the study file kept in the storage for study `name`, or None."""
    from hiddenlab.study.storage import Storage

    try:
        st = Storage(storage)
    except ConfigError:
        return None
    for kept in KEPT:
        if st.exists(name, kept):
            if st.local:
                return st.uri_of(name, kept)
            d = tempfile.mkdtemp(prefix="hiddenlab-study-")
            local = os.path.join(d, kept)
            Path(local).write_bytes(st.read_bytes(name, kept))
            return local
    return None
