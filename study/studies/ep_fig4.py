"""edge-popup Fig 4 "Going wider": accuracy vs width multiplier, Conv4 and Conv6, k = 50%."""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import (EP_DENSE_ADAM, EP_DENSE_SGD, EP_SELECT, N_K, U_K,
                                              trial)

WIDTHS = [0.25, 0.5, 1.0, 1.5, 2.0]


def phases(scale: str) -> list[Phase]:
    series = []
    for model in ("conv4", "conv6"):
        base_w = trial(scale, model, {})["width_mult"]     # width 1 at this scale
        widths = [round(w * base_w, 6) for w in WIDTHS]
        for init, name in ((N_K, "N_k"), (U_K, "U_k")):
            series.append(Series(f"edge-popup {name}",
                                 trial(scale, model, EP_SELECT, init=init, k=0.5),
                                 axes={"width_mult": widths}))
        series.append(Series("learned dense (Adam)",
                             trial(scale, model, EP_DENSE_ADAM),
                             axes={"width_mult": widths}))
        series.append(Series("learned dense (SGD)", trial(scale, model, EP_DENSE_SGD),
                             axes={"width_mult": widths}))
    return [Phase("main", series)]


STUDY = Study(
    name="ep-fig4",
    title="Going wider: test acc vs width multiplier, Conv4/Conv6, edge-popup k=50% (N_k, U_k) "
          "vs learned dense at the same width",
    feeds=("ep-fig4",),
    phases=phases,
)
