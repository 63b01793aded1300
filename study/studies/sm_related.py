"""Slot Machines "related works" table: pruning random networks vs selecting weights.

Per CONV-2/4/6 (CIFAR-10): edge-popup (greedy pruning, k = 50%), Zhou et al. (probabilistic
pruning), Slot Machines GS and PS (K = 8), and learned weights, each with its own paper recipe.
"""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import (EP_SELECT, EP_ZHOU, LEARNED_EPOCHS, SLOT_EPOCHS,
                                              SLOT_MODELS, SM_LEARNED, slot_data, trial)

K = 8


def phases(scale: str) -> list[Phase]:
    series = []
    for model in SLOT_MODELS:
        data = slot_data(model)
        series += [
            Series("edge-popup", trial(scale, model, EP_SELECT, k=0.5, paper=data)),
            Series("Zhou et al.", trial(scale, model, EP_ZHOU, paper=data)),
            Series("Slot Machines (GS)", trial(scale, model, dict(
                method="slot-gs", K=K, epochs=SLOT_EPOCHS), paper=data)),
            Series("Slot Machines (PS)", trial(scale, model, dict(
                method="slot-ps", K=K, epochs=SLOT_EPOCHS), paper=data)),
            Series("learned", trial(scale, model, dict(
                SM_LEARNED, epochs=LEARNED_EPOCHS[model]), paper=data)),
        ]
    return [Phase("main", series)]


STUDY = Study(
    name="sm-related",
    title="Slot Machines vs pruning random networks: test acc of edge-popup, Zhou, Slot GS/PS "
          "and learned weights per CONV-2/4/6",
    feeds=("sm-related",),
    phases=phases,
)
