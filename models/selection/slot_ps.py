"""slot-ps: Slot Machines with probabilistic selection, a value sampled from softmax(scores)."""

from __future__ import annotations

from .slot import SlotMethod, slot_recipe


class SlotPS(SlotMethod):
    name = "slot-ps"
    paper = "Aladago & Torresani, Slot Machines: Discovering Winning Combinations of Random " \
            "Weights in Neural Networks, ICML 2021"
    summary = "K random values per connection; sample one from softmax(scores) each pass"
    train_pick = "sample"
    samples_in_training = True

    def recipe(self, cfg, given):
        # lr 25 (the paper; the reference code's Conv6 value). No weight decay: the reference
        # has none, and at lr 25 a decay of 1e-4 shrinks every score by 0.25% a step, erasing
        # what was learned within a few thousand steps (docs/recipes.md).
        return dict(slot_recipe(), lr=25.0, weight_decay=0.0)

    def recipe_note(self) -> str:
        return ("SGD lr 25, momentum 0.9, no weight decay (the reference code), warm restarts "
                "at epochs 25 and 75 of 200, batch 128, Glorot-uniform values")


METHOD = SlotPS()
