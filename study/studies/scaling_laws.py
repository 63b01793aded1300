"""Scaling laws (hiddenlab's own): error vs width, vs sub-network parameters, vs K, vs depth.

One network family (the edge-popup ConvN, `model=conv` with `depth`) for every method, each with
its own paper recipe on CIFAR-10: learned dense (SGD), edge-popup (k = 50%, U_k; plus a k sweep),
Zhou supermasks, Slot Machines GS and PS (K = 8; plus a K sweep). Width sweep at depth 4, depth
sweep at width 1; sub-network parameters come from the trials (`subnet_params`).
"""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import (EP_DENSE_SGD, EP_SELECT, EP_ZHOU, K_FRACTIONS,
                                              SLOT_EPOCHS, SLOT_KS, U_K, trial)

WIDTHS = [0.25, 0.5, 1.0, 2.0, 4.0]
DEPTHS = [2, 4, 6, 8]


def recipes() -> dict[str, dict]:
    return {
        "learned dense": dict(EP_DENSE_SGD),
        "edge-popup": dict(EP_SELECT, k=0.5, init=U_K),
        "Zhou": dict(EP_ZHOU),
        "slot GS": dict(method="slot-gs", K=8, epochs=SLOT_EPOCHS),
        "slot PS": dict(method="slot-ps", K=8, epochs=SLOT_EPOCHS),
    }


def phases(scale: str) -> list[Phase]:
    base_w = trial(scale, "conv", {})["width_mult"]
    widths = [round(w * base_w, 6) for w in WIDTHS]
    series = []
    for label, recipe in recipes().items():
        series.append(Series(label, trial(scale, "conv", recipe, depth=4),
                             axes={"width_mult": widths}))
        series.append(Series(label, trial(scale, "conv", recipe), axes={"depth": DEPTHS}))
    r = recipes()
    series.append(Series("edge-popup", trial(scale, "conv", r["edge-popup"], depth=4),
                         axes={"k": K_FRACTIONS}))
    for label in ("slot GS", "slot PS"):
        series.append(Series(label, trial(scale, "conv", r[label], depth=4),
                             axes={"K": SLOT_KS}))
    return [Phase("main", series)]


STUDY = Study(
    name="scaling-laws",
    title="Scaling laws: error vs width multiplier, depth, sub-network parameters and K, per "
          "method (power-law fits in hiddenlab analysis)",
    feeds=("scaling-laws",),
    phases=phases,
)
