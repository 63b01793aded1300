"""One module per figure family: edge-popup (Table 1, Figs 3-10, Table 2), Slot Machines (setup,
K, GS vs PS, finetuning, related works), scaling laws, selection dynamics, hiddenlab's own
overviews (quickstart, real-data) and the generic figure of any other study. Every function maps
a results frame to a `FigureResult` (figure + the frame it plotted).
"""

from .dynamics import flip_rate, selected_weights
from .edgepopup import fig3, fig4, fig5, fig6, fig7, fig8, fig9, fig10, table1, table2
from .generic import study_figure
from .overview import quickstart, real_data
from .scaling import fit_power_law, scaling_laws
from .slots import setup_table, sm_finetune, sm_gs_ps, sm_k, sm_related

__all__ = ["fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10", "table1", "table2",
           "setup_table", "sm_k", "sm_gs_ps", "sm_finetune", "sm_related", "scaling_laws",
           "fit_power_law", "flip_rate", "selected_weights", "quickstart", "real_data",
           "study_figure"]
