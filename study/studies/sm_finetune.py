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
from hiddenlab.study.studies._recipes import (LEARNED_EPOCHS, LEARNED_LR, SLOT_EPOCHS, SLOT_MODELS,
                                              SM_LEARNED, slot_data, trial)

K = 8
PAPER_STARTS = (25, 50, 75, 100, 150)
SMOKE_BUDGET, SMOKE_STARTS = 6, (1, 2, 3, 4, 5)   # one smoke start per paper start


class Remaining:
    """derive() of a finetune child: the rest of the budget after its start epoch, on the
    schedule the network trained from scratch has over the same epochs (its SGDR restarts,
    shifted to the child's start), so both sides of the comparison share one schedule."""

    def __init__(self, budgets: dict[str, int], restarts: dict[str, tuple[int, ...]]):
        self.budgets, self.restarts = budgets, restarts

    def __call__(self, p: dict, parent) -> dict:
        budget, start = self.budgets[p["model"]], p["parent_epoch"]
        return {"epochs": budget - start,
                "restarts": tuple(r - start for r in self.restarts[p["model"]]
                                  if start < r < budget)}


def phases(scale: str) -> list[Phase]:
    paper = scale == "paper"
    starts = PAPER_STARTS if paper else SMOKE_STARTS
    budgets = {m: (LEARNED_EPOCHS[m] if paper else SMOKE_BUDGET) for m in SLOT_MODELS}
    slots, learned, restarts = [], [], {}
    for model in SLOT_MODELS:
        slot = trial(scale, model, dict(method="slot-gs", K=K), paper=slot_data(model))
        slot.update(epochs=SLOT_EPOCHS if paper else SMOKE_BUDGET, keep_epochs=tuple(starts))
        slots.append(Series("Slot Machines (GS)", slot))
        scratch = trial(scale, model, SM_LEARNED, paper=slot_data(model))
        scratch["epochs"] = budgets[model]
        restarts[model] = scratch["restarts"] = _restarts_within(scratch["restarts"],
                                                                   budgets[model])
        learned.append(Series("learned from scratch", scratch))
    finetune = ChildSeries("finetuned", parents=["Slot Machines (GS)"], start_epochs=starts,
                           fixed=dict(method="finetune", lr=LEARNED_LR, schedule="sgdr"),
                           derive=Remaining(budgets, restarts))
    return [Phase("slots", slots + learned), Phase("finetune", [finetune])]


def _restarts_within(restarts, epochs: int) -> tuple[int, ...]:
    return tuple(r for r in restarts if 0 < r < epochs)


STUDY = Study(
    name="sm-finetune",
    title="Finetuning slot machines at equal budget: test acc vs total epochs (slot + finetune),"
          " per finetune start epoch, vs the same CONV-2/4/6 trained from scratch",
    feeds=("sm-finetune",),
    phases=phases,
    notes="two phases: finetune trials start from the kept epochs of phase-1 slot trials",
)
