"""edge-popup Fig 7: the weight distribution, Conv4 (reference configs/conv4initablation).

The scaled distributions run in both forms: hiddenlab's (std x 1/sqrt(k), right for every k) and
the reference code's (x 1/sqrt(1 - k)), with which the published curves were made."""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import (EP_SELECT, K_FRACTIONS, KAIMING_UNIFORM, N_K, N_X,
                                              SCALED_N_K, SCALED_N_K_CODE, SCALED_U_K,
                                              SCALED_U_K_CODE, U_K, trial)

INITS = ((N_K, "N_k"), (U_K, "U_k"), (SCALED_N_K, "scaled N_k"), (SCALED_U_K, "scaled U_k"),
         (SCALED_N_K_CODE, "scaled N_k (code)"), (SCALED_U_K_CODE, "scaled U_k (code)"),
         (N_X, "xavier normal"), (KAIMING_UNIFORM, "kaiming uniform"))


def phases(scale: str) -> list[Phase]:
    model = "conv4"
    return [Phase("main", [Series(f"edge-popup {name}", trial(scale, model, EP_SELECT, init=init),
                                  axes={"k": K_FRACTIONS}) for init, name in INITS])]


STUDY = Study(
    name="ep-fig7",
    title="Weight distribution: test acc vs % of weights, Conv4, N_k, U_k, scaled N_k, "
          "scaled U_k (hiddenlab's and the reference code's scaling), xavier normal, kaiming "
          "uniform",
    feeds=("ep-fig7",),
    phases=phases,
)
