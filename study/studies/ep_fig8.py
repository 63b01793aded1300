"""edge-popup Fig 8 and Table 2: ImageNet, sub-network size vs top-1.

edge-popup keeping 30% of ResNet-50, ResNet-101 and Wide ResNet-50-2 (N_k, U_k) vs learned
dense ResNet-18/34/50/101 (same recipe, affine BatchNorm).
"""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import EP_IMAGENET, N_K, U_K, trial


def phases(scale: str) -> list[Phase]:
    series = []
    for model in ("resnet50", "resnet101", "wide-resnet50-2"):
        for init, name in ((N_K, "N_k"), (U_K, "U_k")):
            series.append(Series(f"edge-popup k=30% {name}",
                                 trial(scale, model, EP_IMAGENET, method="edgepopup", k=0.3,
                                       init=init)))
    for model in ("resnet18", "resnet34", "resnet50", "resnet101"):
        series.append(Series("learned dense", trial(scale, model, EP_IMAGENET, method="dense")))
    return [Phase("main", series)]


STUDY = Study(
    name="ep-fig8",
    title="ImageNet: top-1 vs sub-network parameters, edge-popup k=30% in ResNet-50/101 and "
          "WRN-50-2 (N_k, U_k) vs learned dense ResNet-18/34/50/101",
    feeds=("ep-fig8", "ep-table2"),
    phases=phases,
)
