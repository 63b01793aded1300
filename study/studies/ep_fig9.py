"""edge-popup Fig 9: ImageNet ResNet-50, top-1 vs % of weights, edge-popup vs Zhou."""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import (EP_IMAGENET, EP_IMAGENET_ZHOU, K_FRACTIONS, N_K, U_K,
                                              ZHOU_SCORE_CONSTS, trial)


def phases(scale: str) -> list[Phase]:
    model = "resnet50"
    series = []
    for init, name in ((N_K, "N_k"), (U_K, "U_k")):
        series.append(Series(f"edge-popup {name}",
                             trial(scale, model, EP_IMAGENET, method="edgepopup", init=init),
                             axes={"k": K_FRACTIONS}))
    series.append(Series("Zhou N_k",
                         trial(scale, model, EP_IMAGENET_ZHOU, init=N_K, score_init="constant"),
                         axes={"score_const": ZHOU_SCORE_CONSTS}))
    return [Phase("main", series)]


STUDY = Study(
    name="ep-fig9",
    title="ImageNet ResNet-50: top-1 vs % of weights, edge-popup (N_k, U_k) vs Zhou et al. "
          "(realised fraction)",
    feeds=("ep-fig9",),
    phases=phases,
)
