"""real-data: every method at its own recipe on a real data set that works offline.

LeNet-300-100 on Fashion-MNIST (60,000 28×28 training images, 10,000 of them held out for
validation; Debian's `dataset-fashion-mnist`), each stand-alone method of the registry with
nothing but its recipe (`hiddenlab methods`), 3 seeds, 20 epochs (the recipes' schedules fitted to
them): how each selection method compares with learned weights on real images, in about half an
hour on a 2-core CPU. `smoke` is one seed, 2 epochs on 4,096 images.
"""

from hiddenlab.config import METHODS
from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series

EPOCHS = {"paper": 20, "smoke": 2}


def phases(scale: str) -> list[Phase]:
    base = dict(model="lenet-300-100", dataset="fashion-mnist", epochs=EPOCHS[scale],
                num_workers=0)
    if scale == "smoke":
        base["subset"] = 4096
    # Methods that stand alone (not those made from a parent trial, like finetune).
    methods = [name for name, m in METHODS.items() if not m.inherits]
    return [Phase("main", [Series(name, dict(base, method=name)) for name in methods])]


STUDY = Study(
    name="real-data",
    title="Every method at its recipe on Fashion-MNIST (LeNet-300-100): test accuracy vs "
          "learned weights",
    feeds=("real-data",),
    phases=phases,
    default_scale="paper",
    seeds={"smoke": 1, "paper": 3},
)
