"""Slot Machines "finetuning": finetuned slot machines vs training from scratch, equal budget.

Two phases. Phase `slots`: Slot Machines (GS, K = 8) keeping the checkpoints of the finetune
start epochs (`keep_epochs`), and the learned networks trained from scratch for the whole budget.
Phase `finetune` (after phase `slots`): for every slot trial and start epoch E, the selected
weights materialised into a plain network (`method=finetune`, `parent` = the slot trial's
kept checkpoints, `parent_epoch` = E) and trained for budget - E epochs. The figure's x is the
total training epochs (parent_epoch + epoch).
"""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import ChildSeries, Phase, Series
from hiddenlab.study.studies._recipes import (LEARNED_EPOCHS, LEARNED_LR, SLOT_BASE, SLOT_EPOCHS,
                                              SLOT_MODELS, slot_data, slot_lr, trial)

K = 8
PAPER_STARTS = (25, 50, 75, 100, 150)
SMOKE_BUDGET, SMOKE_STARTS = 6, (1, 2, 3, 4, 5)   # one smoke start per paper start


class Remaining:
    """derive() of a finetune child: the epochs left of the budget after the start epoch."""

    def __init__(self, budgets: dict[str, int]):
        self.budgets = budgets

    def __call__(self, p: dict, parent) -> dict:
        return {"epochs": self.budgets[p["model"]] - p["parent_epoch"]}


def phases(scale: str) -> list[Phase]:
    paper = scale == "paper"
    starts = PAPER_STARTS if paper else SMOKE_STARTS
    budgets = {m: (LEARNED_EPOCHS[m] if paper else SMOKE_BUDGET) for m in SLOT_MODELS}
    slots, learned = [], []
    for model in SLOT_MODELS:
        slot = trial(scale, model, dict(SLOT_BASE, method="slot-gs", K=K, lr=slot_lr("slot-gs", K)),
                     paper=slot_data(model))
        slot.update(epochs=SLOT_EPOCHS if paper else SMOKE_BUDGET, keep_epochs=tuple(starts))
        slots.append(Series("Slot Machines (GS)", slot))
        scratch = trial(scale, model, dict(SLOT_BASE, method="dense", lr=LEARNED_LR),
                        paper=slot_data(model))
        scratch["epochs"] = budgets[model]
        learned.append(Series("learned from scratch", scratch))
    finetune = ChildSeries("finetuned", parents=["Slot Machines (GS)"], start_epochs=starts,
                           fixed=dict(SLOT_BASE, method="finetune", lr=LEARNED_LR),
                           derive=Remaining(budgets))
    return [Phase("slots", slots + learned), Phase("finetune", [finetune])]


STUDY = Study(
    name="sm-finetune",
    title="Finetuning slot machines at equal budget: test acc vs total epochs (slot + finetune),"
          " per finetune start epoch, vs the same CONV-2/4/6 trained from scratch",
    feeds=("sm-finetune",),
    phases=phases,
    notes="two phases: finetune trials start from the kept epochs of phase-1 slot trials",
)
