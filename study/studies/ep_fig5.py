"""edge-popup Fig 5: Conv4 of growing width with a sub-network of constant size.

For each size c_j = k_j x params(width 1), k_j in {30, 50, 70}%, every width gets
k = c_j / params(width) (points with k > 1 are dropped): `hiddenlab.models.count_params`.
"""

from functools import lru_cache

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import EP_SELECT, N_K, U_K, trial

WIDTHS = [0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0]
SIZES = {"c1": 0.3, "c2": 0.5, "c3": 0.7}      # the constant size = k x params at width 1


@lru_cache(maxsize=None)
def params(model: str, width_mult: float, depth: int | None, input_shape: tuple | None) -> int:
    from hiddenlab.models import count_params

    return int(count_params(model, width_mult=width_mult, depth=depth, input_shape=input_shape))


class ConstantSize:
    """derive(): k so that k x params(width) = k0 x params(base width). Picklable."""

    def __init__(self, k0: float, base_width: float):
        self.k0, self.base_width = k0, base_width

    def __call__(self, p: dict) -> dict:
        model, depth = p["model"], p.get("depth")
        shape = tuple(p["synthetic_shape"]) if p.get("dataset") == "synthetic" else None
        size = self.k0 * params(model, self.base_width, depth, shape)
        return {"k": round(size / params(model, p["width_mult"], depth, shape), 6)}


def k_at_most_one(p: dict) -> bool:
    return p["k"] <= 1.0


def phases(scale: str) -> list[Phase]:
    model = "conv4"
    base_w = trial(scale, model, {})["width_mult"]
    widths = [round(w * base_w, 6) for w in WIDTHS]
    series = []
    for size, k0 in SIZES.items():
        for init, name in ((N_K, "N_k"), (U_K, "U_k")):
            series.append(Series(f"{size} (k={k0:g} at width 1) {name}",
                                 trial(scale, model, EP_SELECT, init=init),
                                 axes={"width_mult": widths},
                                 derive=ConstantSize(k0, base_w), where=k_at_most_one))
    return [Phase("main", series)]


STUDY = Study(
    name="ep-fig5",
    title="Fixed sub-network size: test acc vs width multiplier, Conv4, sizes c1/c2/c3 = "
          "30/50/70% of width 1 (k set per width)",
    feeds=("ep-fig5",),
    phases=phases,
)
