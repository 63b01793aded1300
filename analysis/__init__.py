"""hiddenlab.analysis: study results -> the papers' figures and tables, scaling laws, selection
dynamics and a measured-vs-published report.

Notebook use::

    from hiddenlab.analysis import load_results, fig3
    df = load_results("runs")            # every <study>/results.parquet under runs/
    fig, data = fig3(df)                 # the figure and exactly the numbers it plots
    study_figure(df, "my-study")         # the generic figure of any study

Command line: ``hiddenlab analysis figures --results runs --out figures``.
"""

import importlib
import importlib.util

# Names resolve lazily (PEP 562): `hiddenlab analysis ...` and `hiddenlab.analysis.cli` must not
# pay for seaborn/matplotlib until a figure is drawn.
_WHERE = {
    **dict.fromkeys(["FigureResult", "NoData", "aggregate"], "core"),
    **dict.fromkeys(["fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10",
                     "fit_power_law", "flip_rate", "quickstart", "scaling_laws",
                     "selected_weights", "setup_table", "sm_finetune", "sm_gs_ps", "sm_k",
                     "sm_related", "table1", "table2", "real_data", "study_figure"], "figures"),
    **dict.fromkeys(["PUBLISHED", "claims", "compare"], "published"),
    **dict.fromkeys(["FIGURES", "Skipped", "build", "build_all"], "registry"),
    **dict.fromkeys(["make_all", "write_report", "write_result"], "report"),
    **dict.fromkeys(["final_results", "load_results", "load_selections", "trial_table"],
                    "results"),
}
_ALIASES = {"sm_setup": "setup_table", "ep_table1": "table1", "ep_table2": "table2"}


def __getattr__(name: str):
    target = _ALIASES.get(name, name)
    if target not in _WHERE:
        if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[target]}"), target)
    globals()[name] = value
    return value


__all__ = ["load_results", "final_results", "load_selections", "trial_table", "aggregate",
           "FigureResult", "NoData", "FIGURES", "Skipped", "build", "build_all", "make_all",
           "write_report", "write_result", "PUBLISHED", "compare", "claims",
           "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10", "table1", "table2",
           "setup_table", "sm_setup", "ep_table1", "ep_table2", "sm_k", "sm_gs_ps",
           "sm_finetune", "sm_related", "scaling_laws",
           "fit_power_law", "flip_rate", "selected_weights", "quickstart", "real_data",
           "study_figure"]
