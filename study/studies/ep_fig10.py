"""edge-popup Fig 10: ImageNet ResNet-50, scaled vs unscaled weight distributions; the scaled ones
in hiddenlab's form (1/sqrt(k)) and the reference code's (1/sqrt(1 - k))."""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import (EP_IMAGENET, K_FRACTIONS, N_K, SCALED_N_K,
                                              SCALED_N_K_CODE, SCALED_U_K, SCALED_U_K_CODE, U_K,
                                              trial)

INITS = ((N_K, "N_k"), (SCALED_N_K, "scaled N_k"), (SCALED_N_K_CODE, "scaled N_k (code)"),
         (U_K, "U_k"), (SCALED_U_K, "scaled U_k"), (SCALED_U_K_CODE, "scaled U_k (code)"))


def phases(scale: str) -> list[Phase]:
    model = "resnet50"
    return [Phase("main", [
        Series(f"edge-popup {name}",
               trial(scale, model, EP_IMAGENET, method="edgepopup", init=init),
               axes={"k": K_FRACTIONS})
        for init, name in INITS])]


STUDY = Study(
    name="ep-fig10",
    title="ImageNet ResNet-50: top-1 vs % of weights, N_k vs scaled N_k, U_k vs scaled U_k",
    feeds=("ep-fig10",),
    phases=phases,
)
