"""biprop (MPT-1/32) vs edge-popup across k, Conv6 and CIFAR ResNet-18 on CIFAR-10.

biprop's grid of k (docs/recipes.md#biprop); each method trains with its own recipe (biprop's is
edge-popup's, with scaled Kaiming-normal weights).
"""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import EP_SELECT, trial

MODELS = ["conv6", "cifar-resnet18"]
K_GRID = [0.1, 0.2, 0.4, 0.5, 0.6, 0.8]
BIPROP = dict(method="biprop")


def phases(scale: str) -> list[Phase]:
    series = []
    for model in MODELS:
        series.append(Series("biprop", trial(scale, model, BIPROP), axes={"k": K_GRID}))
        series.append(Series("edge-popup", trial(scale, model, EP_SELECT), axes={"k": K_GRID}))
    return [Phase("main", series)]


STUDY = Study(
    name="biprop-k",
    title="biprop (MPT-1/32) vs edge-popup: test acc vs % of weights kept, Conv6 and CIFAR "
          "ResNet-18 on CIFAR-10",
    feeds=("biprop-k",),
    phases=phases,
)
