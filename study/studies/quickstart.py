"""quickstart: every selection method on the real, offline `digits` data set, on a laptop CPU.

Two small networks (FC 64-300-100-10 and Conv2 at quarter width, both fit 8x8 images) trained by
learned dense weights, edge-popup at five k, Zhou supermasks, Slot Machines GS and PS at K = 2, 4,
8, 16, and (second phase) finetuning the GS K = 8 selection from a third of training: 64 trials,
a few minutes on 2 cores.
`smoke` is the same at 2 epochs (tests).
"""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import ChildSeries, Phase, Series
from hiddenlab.study.studies._recipes import K_FRACTIONS

MODELS = {"fc": 1.0, "conv2": 0.25}
KS = [2, 4, 8, 16]
FINETUNE_K = 8
EPOCHS = {"paper": 15, "smoke": 2}
START = {"paper": 5, "smoke": 1}     # finetune from this slot-machine epoch


def base(scale: str, model: str) -> dict:
    d = dict(dataset="digits", model=model, width_mult=MODELS[model], epochs=EPOCHS[scale],
             batch_size=64, eval_batch_size=512, num_workers=0, optimizer="sgd", momentum=0.9,
             schedule="cosine", weight_decay=1e-4)
    if scale == "smoke":
        d["subset"] = 256
    return d


def slot_lr_of(p: dict) -> dict:
    """GS: the paper's 0.2 (K <= 8) / 0.1. PS: 100 (tuned on digits; the CIFAR recipe's 25
    leaves these small networks at chance for K >= 8)."""
    return {"lr": 100.0 if p["method"] == "slot-ps" else (0.2 if p["K"] <= 8 else 0.1)}


def finetune_parent(cfg) -> bool:
    return cfg.K == FINETUNE_K


class Remaining:
    def __init__(self, epochs: int):
        self.epochs = epochs

    def __call__(self, p: dict, parent) -> dict:
        return {"epochs": self.epochs - p["parent_epoch"]}


def phases(scale: str) -> list[Phase]:
    series = []
    for model in MODELS:
        b = base(scale, model)
        series += [
            Series("learned dense", dict(b, method="dense", lr=0.05)),
            Series("edge-popup", dict(b, method="edgepopup", lr=0.1), axes={"k": K_FRACTIONS}),
            Series("Zhou supermask", dict(b, method="supermask", lr=200.0, weight_decay=0.0)),
            Series("slot GS", dict(b, method="slot-gs", keep_epochs=(START[scale],)),
                   axes={"K": KS}, derive=slot_lr_of),
            Series("slot PS", dict(b, method="slot-ps"), axes={"K": KS}, derive=slot_lr_of),
        ]
    finetune = ChildSeries("finetune (from slot GS)", parents=["slot GS"],
                           start_epochs=[START[scale]],
                           fixed=dict(method="finetune", lr=0.05, optimizer="sgd", momentum=0.9,
                                      schedule="cosine", weight_decay=1e-4),
                           derive=Remaining(EPOCHS[scale]), parent_filter=finetune_parent)
    return [Phase("select", series), Phase("finetune", [finetune])]


STUDY = Study(
    name="quickstart",
    title="digits (offline, 8x8): learned dense vs edge-popup (k) vs Zhou vs Slot Machines "
          "GS/PS (K) vs finetuning, FC and Conv2; minutes on a laptop CPU",
    feeds=("quickstart",),
    phases=phases,
    default_scale="paper",
    seeds={"smoke": 1, "paper": 2},
)
