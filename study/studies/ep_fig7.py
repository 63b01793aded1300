"""edge-popup Fig 7: the weight distribution, Conv4 (reference configs/conv4initablation)."""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import (EP_SELECT, K_FRACTIONS, KAIMING_UNIFORM, N_K, N_X,
                                              SCALED_N_K, SCALED_U_K, U_K, trial)

INITS = ((N_K, "N_k"), (U_K, "U_k"), (SCALED_N_K, "scaled N_k"), (SCALED_U_K, "scaled U_k"),
         (N_X, "xavier normal"), (KAIMING_UNIFORM, "kaiming uniform"))


def phases(scale: str) -> list[Phase]:
    model = "conv4"
    return [Phase("main", [Series(f"edge-popup {name}", trial(scale, model, EP_SELECT, init=init),
                                  axes={"k": K_FRACTIONS}) for init, name in INITS])]


STUDY = Study(
    name="ep-fig7",
    title="Weight distribution: test acc vs % of weights, Conv4, N_k, U_k, scaled N_k, "
          "scaled U_k, xavier normal, kaiming uniform",
    feeds=("ep-fig7",),
    phases=phases,
)
