"""edge-popup Fig 3 "Going deeper": accuracy vs % of weights kept, Conv2/4/6/8 on CIFAR-10."""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import (CONV_MODELS, EP_DENSE_ADAM, EP_DENSE_SGD, EP_SELECT,
                                              K_FRACTIONS, N_K, U_K, trial)


def phases(scale: str) -> list[Phase]:
    series = []
    for model in CONV_MODELS:
        for init, name in ((N_K, "N_k"), (U_K, "U_k")):
            series.append(Series(f"edge-popup {name}", trial(scale, model, EP_SELECT, init=init),
                                 axes={"k": K_FRACTIONS}))
        series.append(Series("learned dense (Adam)",
                             trial(scale, model, EP_DENSE_ADAM)))
        series.append(Series("learned dense (SGD)", trial(scale, model, EP_DENSE_SGD)))
    return [Phase("main", series)]


STUDY = Study(
    name="ep-fig3",
    title="Going deeper: test acc vs % of weights, panels Conv2/4/6/8, N_k and U_k vs learned "
          "dense (Adam, SGD)",
    feeds=("ep-fig3",),
    phases=phases,
)
