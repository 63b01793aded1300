"""hiddenlab.analysis: study results -> the papers' figures and tables, scaling laws, selection
dynamics and a measured-vs-published report.

Notebook use::

    from hiddenlab.analysis import load_results, fig3
    df = load_results("runs")            # every <study>/results.parquet under runs/
    fig, data = fig3(df)                 # the figure and exactly the numbers it plots

Command line: ``hiddenlab analysis figures --results runs --out figures``.
"""

from .core import FigureResult, NoData, aggregate
from .figures import (fig3, fig4, fig5, fig6, fig7, fig8, fig9, fig10, fit_power_law, flip_rate,
                      quickstart, scaling_laws, selected_weights, setup_table, sm_finetune,
                      sm_gs_ps, sm_k, sm_related, table1, table2)
from .published import PUBLISHED, claims, compare

sm_setup, ep_table1, ep_table2 = setup_table, table1, table2  # the registry's id spellings
from .registry import FIGURES, Skipped, build, build_all
from .report import make_all, write_report, write_result
from .results import final_results, load_results, load_selections, trial_table

__all__ = ["load_results", "final_results", "load_selections", "trial_table", "aggregate",
           "FigureResult", "NoData", "FIGURES", "Skipped", "build", "build_all", "make_all",
           "write_report", "write_result", "PUBLISHED", "compare", "claims",
           "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10", "table1", "table2",
           "setup_table", "sm_setup", "ep_table1", "ep_table2", "sm_k", "sm_gs_ps",
           "sm_finetune", "sm_related", "scaling_laws",
           "fit_power_law", "flip_rate", "selected_weights", "quickstart"]
