"""Named studies: one per figure/table of figures.md (plus `quickstart`), each at two scales.

A study module in `hiddenlab.study.studies` defines `STUDY = Study(...)`; `STUDIES` finds them
all. `Study.plan(scale, seeds, overrides, parent_dir)` expands and validates every trial.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from hiddenlab.config import ConfigError
from hiddenlab.study.spaces import SCALES, Phase, Plan, expand

# Figures/tables that need no trials or read the trials of any study.
NO_TRIALS = {
    "ep-table1": "architectures Conv2/4/6/8: computed from the models (hiddenlab analysis)",
    "sm-setup": "Slot Machines architectures: computed from the models (hiddenlab analysis)",
    "ep-table2": "ImageNet results: reads the trials of ep-fig8",
    "flip-rate": "selection dynamics: reads the per-epoch flip_rate of any study",
    "selected-weights": "selected vs unselected weight histograms: reads any study's artifacts",
}

ORDER = ["quickstart", "ep-fig3", "ep-fig4", "ep-fig5", "ep-fig6", "ep-fig7", "ep-fig8",
         "ep-fig9", "ep-fig10", "sm-k", "sm-gs-ps", "sm-finetune", "sm-related", "scaling-laws"]


@dataclass
class Study:
    name: str
    title: str
    feeds: tuple[str, ...]
    phases: Callable[[str], list[Phase]]          # scale -> phases
    default_scale: str = "smoke"
    seeds: Mapping[str, int] = field(default_factory=lambda: {"smoke": 1, "paper": 5})
    notes: str = ""
    pack: int = 1    # trials per process, trained as one vectorised model (study/packing.py)

    def default_seeds(self, scale: str) -> int:
        return int(self.seeds[scale])

    def plan(self, scale: str | None = None, seeds: int | Sequence[int] | None = None,
             overrides: Mapping[str, Any] | None = None,
             parent_dir: Callable[[str], str] | None = None) -> Plan:
        scale = scale or self.default_scale
        if scale not in SCALES:
            raise ConfigError("scale", f"{scale!r} is not one of {', '.join(SCALES)}")
        if seeds is None:
            seed_list = list(range(self.default_seeds(scale)))
        elif isinstance(seeds, int) and not isinstance(seeds, bool):
            if seeds < 1:
                raise ConfigError("seeds", f"{seeds} must be >= 1")
            seed_list = list(range(seeds))
        else:
            seed_list = list(seeds)
            if not seed_list or not all(isinstance(s, int) and s >= 0 for s in seed_list):
                raise ConfigError("seeds", f"{seeds!r} is not a non-empty list of seeds >= 0")
        kw = {} if parent_dir is None else {"parent_dir": parent_dir}
        return expand(self.name, self.phases(scale), scale, seed_list, overrides, **kw)

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


def get_study(name: str) -> Study:
    all_ = studies()
    if name not in all_:
        hint = f" ({NO_TRIALS[name]})" if name in NO_TRIALS else ""
        raise ConfigError("study", f"{name!r} is not a study{hint}; studies: {', '.join(all_)}")
    return all_[name]
