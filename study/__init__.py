"""hiddenlab's studies on Ray Tune, and the Python API for studies of your own::

    from hiddenlab.study import Study, Series, Phase, ChildSeries, run_study, plan, RunOptions
    from hiddenlab.study import loguniform, uniform, quniform, randint, choice, TuneSettings

Names resolve lazily, so `import hiddenlab.study` stays cheap for the command line.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Study": "registry", "get_study": "registry", "studies": "registry",
    "Series": "spaces", "Phase": "spaces", "ChildSeries": "spaces", "Sample": "spaces",
    "loguniform": "spaces", "uniform": "spaces", "quniform": "spaces", "randint": "spaces",
    "choice": "spaces", "Plan": "spaces",
    "TuneSettings": "tuning",
    "RunOptions": "runner", "RunSummary": "runner", "run_study": "runner", "plan": "runner",
    "load_study": "studyfile",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hiddenlab.study' has no attribute {name!r}")
    module = importlib.import_module(f"hiddenlab.study.{_EXPORTS[name]}")
    value = getattr(module, "load" if name == "load_study" else name)
    globals()[name] = value
    return value
