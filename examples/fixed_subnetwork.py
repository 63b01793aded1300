"""A Python study: edge-popup at three widths with k derived from the width (the wider network
keeps a smaller fraction, so every sub-network has about as many weights), then a finetune phase
that trains each selected sub-network's weights from a middle epoch on, at equal total budget.

    hiddenlab study plan examples/fixed_subnetwork.py
    hiddenlab study run examples/fixed_subnetwork.py [--scale smoke]
"""

from hiddenlab.study import ChildSeries, Phase, Series, Study

WIDTHS = [0.25, 0.5, 1.0]
KEEP_AT_WIDTH_1 = 0.15          # k at width 1; k x width^2 stays constant (hidden layers)
EPOCHS = {"paper": 6, "smoke": 2}
START = {"paper": 3, "smoke": 1}   # finetune from this epoch of the edge-popup trial


def fixed_subnetwork(point: dict) -> dict:
    """k such that the kept hidden weights (k x width^2 x ...) match width 1's."""
    return {"k": min(1.0, KEEP_AT_WIDTH_1 / point["width_mult"] ** 2)}


class Remaining:
    """A child's epochs: the rest of its parent's budget after the start epoch."""

    def __init__(self, budget: int):
        self.budget = budget

    def __call__(self, point: dict, parent) -> dict:
        return {"epochs": self.budget - point["parent_epoch"]}


def phases(scale: str) -> list[Phase]:
    base = dict(model="fc", dataset="digits", batch_size=64, num_workers=0,
                epochs=EPOCHS[scale], **({"subset": 256} if scale == "smoke" else {}))
    select = Series("edge-popup (fixed sub-network)",
                    dict(base, method="edgepopup", keep_epochs=(START[scale],)),
                    axes={"width_mult": WIDTHS}, derive=fixed_subnetwork)
    finetune = ChildSeries("finetuned", parents=[select.label], start_epochs=[START[scale]],
                           fixed=dict(method="finetune", lr=0.05, schedule="cosine"),
                           derive=Remaining(EPOCHS[scale]))
    return [Phase("select", [select]), Phase("finetune", [finetune])]


STUDY = Study(
    name="fixed-subnetwork",
    title="edge-popup at widths 0.25/0.5/1 with k from the width (constant sub-network), "
          "then finetuned at equal budget",
    phases=phases,
    default_scale="paper",
    seeds=2,
)
