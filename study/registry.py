"""Studies: the built-in ones (one per figure/table of the papers, plus `quickstart`) and the
user's own (a YAML or Python study file, `hiddenlab.study.studyfile`), each at two scales.

A study module in `hiddenlab.study.studies` defines `STUDY = Study(...)`; `studies()` finds them
all. `Study.plan(scale, seeds, overrides, parent_dir)` expands and validates every trial.
`get_study(name_or_path, storage)` finds a built-in study by name, a study file by path, or a
study run before from a file by its name (its file is kept in the storage).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from hiddenlab.config import ConfigError
from hiddenlab.study.spaces import SCALES, Phase, Plan, expand
from hiddenlab.study.tuning import TuneSettings

# Figures/tables that need no trials or read the trials of any study.
NO_TRIALS = {
    "ep-table1": "architectures Conv2/4/6/8: computed from the models (hiddenlab analysis)",
    "sm-setup": "Slot Machines architectures: computed from the models (hiddenlab analysis)",
    "ep-table2": "ImageNet results: reads the trials of ep-fig8",
    "flip-rate": "selection dynamics: reads the per-epoch flip_rate of any study",
    "selected-weights": "selected vs unselected weight histograms: reads any study's artifacts",
}

ORDER = ["quickstart", "real-data", "ep-fig3", "ep-fig4", "ep-fig5", "ep-fig6", "ep-fig7", "ep-fig8",
         "ep-fig9", "ep-fig10", "sm-k", "sm-gs-ps", "sm-finetune", "sm-related", "scaling-laws"]


@dataclass
class Study:
    """A study: `phases` (a list, or scale -> list), the Ray Tune settings (`tune`), the seeds
    per scale (an int for both scales is fine), and for the smoke scale `smoke`: fields set in
    every trial (e.g. `{"epochs": 1, "subset": 256}`). `source` is the study file, if any."""

    name: str
    title: str = ""
    feeds: tuple[str, ...] = ()
    phases: Callable[[str], list[Phase]] | Sequence[Phase] = ()
    default_scale: str = "smoke"
    seeds: Mapping[str, int] | int | Sequence[int] = field(
        default_factory=lambda: {"smoke": 1, "paper": 5})
    notes: str = ""
    tune: TuneSettings = field(default_factory=TuneSettings)
    smoke: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    pack: int = 1    # trials per process, trained as one vectorised model (study/packing.py)

    @property
    def builtin(self) -> bool:
        """One of hiddenlab's own studies (not a study file, not one built in a script)."""
        return self.source is None and studies().get(self.name) is self

    def default_seeds(self, scale: str) -> list[int]:
        seeds = self.seeds
        if isinstance(seeds, Mapping):
            seeds = seeds[scale]
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            return list(range(seeds))
        return list(seeds)

    def phases_at(self, scale: str) -> list[Phase]:
        phases = self.phases(scale) if callable(self.phases) else list(self.phases)
        if not phases:
            raise ConfigError("phases", f"study {self.name} has no series")
        return phases

    def plan(self, scale: str | None = None, seeds: int | Sequence[int] | None = None,
             overrides: Mapping[str, Any] | None = None,
             parent_dir: Callable[[str], str] | None = None,
             num_samples: int | None = None) -> Plan:
        scale = scale or self.default_scale
        if scale not in SCALES:
            raise ConfigError("scale", f"{scale!r} is not one of {', '.join(SCALES)}")
        if seeds is None:
            seed_list = self.default_seeds(scale)
        elif isinstance(seeds, int) and not isinstance(seeds, bool):
            if seeds < 1:
                raise ConfigError("seeds", f"{seeds} must be >= 1")
            seed_list = list(range(seeds))
        else:
            seed_list = list(seeds)
        if not seed_list or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                    for s in seed_list):
            raise ConfigError("seeds", f"{seeds!r} is not a non-empty list of seeds >= 0")
        kw = {} if parent_dir is None else {"parent_dir": parent_dir}
        merged = dict(self.smoke) if scale == "smoke" else {}
        merged.update(overrides or {})
        return expand(self.name, self.phases_at(scale), scale, seed_list, merged,
                      num_samples=num_samples or self.tune.num_samples, source=self.source,
                      **kw)

    def count(self, scale: str) -> int:
        return len(self.plan(scale))


_STUDIES: dict[str, Study] | None = None


def _discover() -> dict[str, Study]:
    import hiddenlab.study.studies as pkg

    found: dict[str, Study] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        study = getattr(module, "STUDY", None)
        if isinstance(study, Study):
            if study.name in found:
                raise RuntimeError(f"two study modules define {study.name!r}")
            found[study.name] = study
    rank = {n: i for i, n in enumerate(ORDER)}
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def studies() -> dict[str, Study]:
    global _STUDIES
    if _STUDIES is None:
        _STUDIES = _discover()
    return _STUDIES


def get_study(name: str, storage: str | None = None) -> Study:
    """A built-in study by name, a study file (.yaml/.yml/.py) by path, or a study run before
    from a file, by its name, from the copy of its file kept in `storage`."""
    from hiddenlab.study import studyfile

    if studyfile.is_study_file(name):
        return studyfile.load(name)
    all_ = studies()
    if name in all_:
        return all_[name]
    kept = studyfile.kept_file(storage, name) if storage else None
    if kept is not None:
        return studyfile.load(kept, name=name)
    hint = f" ({NO_TRIALS[name]})" if name in NO_TRIALS else ""
    where = f" or in {storage}" if storage else ""
    raise ConfigError("study", f"{name!r} is not a study{hint}: not a built-in study, not a "
                      f"study file (PATH.yaml, PATH.py){where}; built-in studies: "
                      f"{', '.join(all_)}")
