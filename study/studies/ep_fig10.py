"""edge-popup Fig 10: ImageNet ResNet-50, scaled vs unscaled weight distributions."""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import (EP_IMAGENET, K_FRACTIONS, N_K, SCALED_N_K,
                                              SCALED_U_K, U_K, trial)

INITS = ((N_K, "N_k"), (SCALED_N_K, "scaled N_k"), (U_K, "U_k"), (SCALED_U_K, "scaled U_k"))


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
