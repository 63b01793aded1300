"""Slot Machines "selection methods": greedy (GS) vs probabilistic (PS) selection across K."""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase
from hiddenlab.study.studies.sm_k import PANELS, slot_series


def phases(scale: str) -> list[Phase]:
    series = []
    for model in PANELS:
        series.append(slot_series(scale, model, "slot-gs", "GS"))
        series.append(slot_series(scale, model, "slot-ps", "PS"))
    return [Phase("main", series)]


STUDY = Study(
    name="sm-gs-ps",
    title="Slot Machines selection methods: test acc vs K, GS vs PS, LeNet/MNIST and "
          "CONV-2/4/6 on CIFAR-10",
    feeds=("sm-gs-ps",),
    phases=phases,
)
