"""Shared pieces of the analysis: the figure result type, seed aggregation and the labels that every
figure uses for models, inits and methods.

Accuracies in results frames are fractions in [0, 1]; everything a figure plots (and writes to its
CSV) is in percent, so `aggregate` scales by 100 by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pandas as pd

PCT = 100.0


class NoData(Exception):
    """The frame holds none of the trials a figure needs; the message says which."""


@dataclass
class FigureResult:
    """What a figure or table function returns.

    `data` holds exactly the plotted numbers (one row per point or baseline: mean, sd, n); `fig`
    is a matplotlib Figure (None for pure tables); `table` is the display form of a table;
    `reading` a one-line computed description of the trend; `notes` what a reader must know
    (partial seeds, points left out); `extra` further frames written beside the CSV
    (e.g. scaling-law exponents); `tables` further display tables the report shows after `table`
    (title -> frame). Unpacks as ``fig, data = fig3(df)``.
    """

    id: str
    data: pd.DataFrame
    fig: object | None = None
    reading: str = ""
    table: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    title: str = ""
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __iter__(self) -> Iterator:
        yield self.fig
        yield self.data

    def _repr_png_(self):  # a notebook shows the figure when a result is the last expression
        if self.fig is None:
            return None
        import io

        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=100)
        return buf.getvalue()


def aggregate(frame: pd.DataFrame, by: list[str], y: str = "acc", scale: float = PCT,
              x: str | None = None) -> pd.DataFrame:
    """Mean, sample sd (ddof=1: NaN for a single trial) and n of `y` per group of `by`.

    `x`, when given, is a *measured* abscissa (e.g. Zhou's realised kept fraction): its mean and sd
    over the group become columns `x` and `x_sd` (scaled like y). Groups keep NaN keys. With a
    `point` column (config hash), `configs` counts the configurations pooled in each group.
    """
    cols = list(by)
    if frame.empty:
        out = pd.DataFrame(columns=cols + ["mean", "sd", "n"] + (["x", "x_sd"] if x else []))
        return out
    g = frame.groupby(cols, dropna=False, sort=True)
    out = g[y].agg(["mean", "std", "count"]).rename(columns={"std": "sd", "count": "n"})
    out[["mean", "sd"]] *= scale
    if x is not None:
        xs = g[x].agg(["mean", "std"]).rename(columns={"mean": "x", "std": "x_sd"})
        out = out.join(xs * scale)
    if "point" in frame.columns and "point" not in cols:
        # Seeds of one configuration make a point; more than one configuration under one point
        # means the grouping hides a difference (another lr, scale, ...): counted, and reported.
        out["configs"] = g["point"].nunique()
    out = out.reset_index()
    out["n"] = out["n"].astype(int)
    return out


# --- labels -----------------------------------------------------------------------------------

INIT_LABELS = {
    "kaiming_normal": "N_k",
    "signed_constant": "U_k",
    "scaled_kaiming_normal": "scaled N_k",
    "scaled_signed_constant": "scaled U_k",
    "xavier_normal": "N_x",
    "xavier_constant": "U_x",
    "kaiming_uniform": "kaiming uniform",
    "unsigned_constant": "unsigned constant",
    "slot-code": "Glorot U (code)",
    "slot-paper": "Glorot (paper)",
}

METHOD_LABELS = {
    "edgepopup": "edge-popup",
    "supermask": "Zhou et al.",
    "slot-gs": "Slot Machines (GS)",
    "slot-ps": "Slot Machines (PS)",
    "dense": "learned",
    "finetune": "finetuned",
}

OPTIMIZER_LABELS = {"sgd": "SGD", "adam": "Adam"}

_MODEL_SPECIAL = {
    "lenet30010": "LeNet-300-100",
    "lenet300100": "LeNet-300-100",
    "fc": "FC",
}


def norm_model(name: str) -> str:
    """Name-independent key of a model: lower case, alphanumerics only, wide ResNets as `wrn`,
    so `wide_resnet50_2`, `wrn50-2` and `WRN-50-2` compare equal."""
    s = re.sub(r"[^a-z0-9]", "", str(name).lower())
    return s.replace("wideresnet", "wrn")


def model_label(name) -> str:
    """Paper spelling of a model name (`conv6` -> Conv6, `slot-conv4` -> CONV-4,
    `resnet50` -> ResNet-50, `wide_resnet50_2` -> WRN-50-2); unknown names pass through."""
    if name is None or (isinstance(name, float) and np.isnan(name)):
        return "?"
    s = str(name)
    key = norm_model(s)
    if key in _MODEL_SPECIAL:
        return _MODEL_SPECIAL[key]
    if m := re.fullmatch(r"slotconv(\d+)", key):
        return f"CONV-{m.group(1)}"
    if m := re.fullmatch(r"conv(\d+)", key):
        return f"Conv{m.group(1)}"
    if m := re.fullmatch(r"(cifar)?resnet(\d+)(cifar)?", key):
        return f"ResNet-{m.group(2)}" + (" (CIFAR)" if m.group(1) or m.group(3) else "")
    if m := re.fullmatch(r"wrn(\d+)(\d)", key):
        return f"WRN-{m.group(1)}-{m.group(2)}"
    if m := re.fullmatch(r"vgg(\d+)", key):
        return f"VGG-{m.group(1)}"
    return s


def arch_name(model, depth) -> str:
    """The model name with an explicit depth applied (`conv6` at depth 8 is `conv8`)."""
    if depth is None or (isinstance(depth, float) and np.isnan(depth)):
        return str(model)
    return re.sub(r"\d+$", str(int(depth)), str(model)) if re.search(r"\d+$", str(model)) else \
        f"{model}{int(depth)}"


CODE_SUFFIX = " (code)"


def init_label(name) -> str:
    """Paper notation of an init; `scaled_<x>_code` (the reference code's scaled form, std x
    1/sqrt(1-k)) is its `scaled_<x>` label marked `(code)`."""
    name = str(name)
    if name.startswith("scaled_") and name.endswith("_code"):
        return init_label(name[:-len("_code")]) + CODE_SUFFIX
    return INIT_LABELS.get(name, name)


def method_label(method, optimizer=None) -> str:
    label = METHOD_LABELS.get(str(method), str(method))
    if method in ("dense", "finetune") and optimizer is not None and isinstance(optimizer, str):
        label = f"{label} ({OPTIMIZER_LABELS.get(optimizer, optimizer)})"
    return label


DATASET_LABELS = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                  "imagenet": "ImageNet", "digits": "digits", "synthetic": "synthetic",
                  "fashion-mnist": "Fashion-MNIST"}


def dataset_label(name) -> str:
    return DATASET_LABELS.get(str(name), str(name))


def natural_key(s: str):
    """Sort `Conv2 < Conv4 < Conv10`, numbers as numbers."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s)))


def fmt_pct(v: float, digits: int = 1) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def fmt_x(v: float) -> str:
    """Compact number for readings: 16, 0.5, 30."""
    if v is None or not np.isfinite(v):
        return "?"
    if abs(v - round(v)) < 1e-9:
        return str(int(round(v)))
    return f"{v:.3g}"


def fmt_count(v: float) -> str:
    """Parameter counts as 7.7M / 266k."""
    if v is None or not np.isfinite(v):
        return "–"
    if v >= 1e6:
        return f"{v / 1e6:.3g}M"
    if v >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{int(v)}"
