"""Slot Machines "vs traditional": test acc vs K, Slot Machines (GS) vs learned weights.

Panels LeNet-300-100 on MNIST and CONV-2/4/6 on CIFAR-10; the methods' paper recipes (SGDR,
GS lr 0.2 for K <= 8 else 0.1, PS lr 25, 200 epochs; learned baselines 200/200/330/330 epochs,
lr 0.01, starting from the slot values' distribution).
"""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import (LEARNED_EPOCHS, SLOT_EPOCHS, SLOT_KS, SLOT_MODELS,
                                              SM_LEARNED, slot_data, trial)

PANELS = ["lenet-300-100", *SLOT_MODELS]


def slot_series(scale: str, model: str, method: str, label: str) -> Series:
    return Series(label, trial(scale, model, dict(method=method, epochs=SLOT_EPOCHS),
                               paper=slot_data(model)), axes={"K": SLOT_KS})


def learned_series(scale: str, model: str) -> Series:
    return Series("learned", trial(scale, model, dict(SM_LEARNED, epochs=LEARNED_EPOCHS[model]),
                                   paper=slot_data(model)))


def phases(scale: str) -> list[Phase]:
    series = []
    for model in PANELS:
        series.append(slot_series(scale, model, "slot-gs", "Slot Machines (GS)"))
        series.append(learned_series(scale, model))
    return [Phase("main", series)]


STUDY = Study(
    name="sm-k",
    title="Slot Machines vs traditional training: test acc vs K (2..64), LeNet/MNIST and "
          "CONV-2/4/6 on CIFAR-10, GS vs learned weights",
    feeds=("sm-k",),
    phases=phases,
)
