"""edge-popup Fig 6: edge-popup vs Zhou et al. supermasks on Conv4, four weight distributions.

edge-popup sets k directly; Zhou's kept fraction follows from the constant mask-logit init
(score_const): the figure plots the realised fraction (`kept_fraction`).
"""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import (EP_SELECT, EP_ZHOU, K_FRACTIONS, N_K, N_X, U_K, U_X,
                                              ZHOU_SCORE_CONSTS, trial)

INITS = ((N_K, "N_k"), (U_K, "U_k"), (N_X, "N_x"), (U_X, "U_x"))


def phases(scale: str) -> list[Phase]:
    model = "conv4"
    series = []
    for init, name in INITS:
        series.append(Series(f"edge-popup {name}", trial(scale, model, EP_SELECT, init=init),
                             axes={"k": K_FRACTIONS}))
        series.append(Series(f"Zhou {name}",
                             trial(scale, model, EP_ZHOU, init=init,
                                   score_init="constant"),
                             axes={"score_const": ZHOU_SCORE_CONSTS}))
    return [Phase("main", series)]


STUDY = Study(
    name="ep-fig6",
    title="edge-popup vs Zhou et al.: test acc vs % of weights (Zhou: realised), Conv4, "
          "N_k, U_k, N_x, U_x",
    feeds=("ep-fig6",),
    phases=phases,
)
