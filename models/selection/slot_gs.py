"""slot-gs: Slot Machines with greedy selection, the value of the largest score per connection."""

from __future__ import annotations

from .slot import SlotMethod, slot_recipe


class SlotGS(SlotMethod):
    name = "slot-gs"
    paper = "Aladago & Torresani, Slot Machines: Discovering Winning Combinations of Random " \
            "Weights in Neural Networks, ICML 2021"
    summary = "K random values per connection; pick argmax of K scores (greedy)"
    train_pick = "argmax"

    def recipe(self, cfg, given):
        # Paper: lr 0.2 for K <= 8, 0.1 above; L2 1e-4 (harmless at these rates).
        return dict(slot_recipe(), lr=0.2 if cfg.options.K <= 8 else 0.1)

    def recipe_note(self) -> str:
        return ("SGD lr 0.2 (K <= 8) / 0.1 (K > 8), momentum 0.9, wd 1e-4, warm restarts at "
                "epochs 25 and 75 of 200, batch 128, Glorot-uniform values (the paper)")


METHOD = SlotGS()
