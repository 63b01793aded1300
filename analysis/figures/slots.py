"""Slot Machines (Aladago & Torresani 2021): the setup table, accuracy vs K (vs learned weights;
GS vs PS) on a log2 K axis, equal-budget finetuning, and the related-work table.

Panels are the paper's: LeNet-300-100 on MNIST, CONV-2/4/6 on CIFAR-10 (whatever models the study
holds, in that order). Accuracies are those of each trial's best-validation network
(`best_val_test_acc`): the paper selects on validation (early stopping).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import FigureResult, NoData, aggregate, fmt_x, method_label
from ..results import BEST_VAL
from ..style import SeriesStyles, finish, new_figure, styled
from ..trends import tolerance
from ._common import (baselines, curve_figure, curve_reading, dense_label, label_columns, points,
                      prepare, with_accuracy)
from .edgepopup import _arch_table

SLOT = ("slot-gs", "slot-ps")
WHY = "the paper selects on validation (early stopping)"


def _prepare(df, study, fig_id, with_dataset=False):
    final, notes = prepare(df, study, fig_id, BEST_VAL, WHY)
    return label_columns(final, with_dataset=with_dataset), notes


def setup_table(df: pd.DataFrame | None = None) -> FigureResult:
    """The Slot Machines setup table: LeNet-300-100, CONV-2/4/6, VGG-19 (computed, no trials)."""
    return _arch_table("sm-setup", "Slot Machines setup: architectures",
                       [("lenet-300-100", "MNIST"), ("slot-conv2", "CIFAR-10"),
                        ("slot-conv4", "CIFAR-10"), ("slot-conv6", "CIFAR-10"),
                        ("vgg19", "CIFAR-10")])


@styled
def _acc_vs_K(df, study, fig_id, title, methods) -> FigureResult:
    f, notes = _prepare(df, study, fig_id, with_dataset=True)
    lines = f[f["method"].isin(methods)].copy()
    if lines.empty:
        raise NoData(f"{fig_id}: no finished {'/'.join(methods)} trials in {study}")
    lines["series"] = [method_label(m) for m in lines["method"]]
    lines["x"] = lines["K_resolved"].astype(float)
    base = f[f["method"] == "dense"].copy()
    base["series"] = dense_label(base)
    pts = points(lines)
    b = baselines(base, set(pts["panel"]))
    fig, data = curve_figure(fig_id, title, pts, b, xlabel="K (values per connection)", logx2=True)
    return FigureResult(fig_id, with_accuracy(data, BEST_VAL), fig, curve_reading(data, "K"),
                        notes=notes, title=title)


def sm_k(df: pd.DataFrame, study="sm-k") -> FigureResult:
    """Accuracy vs K: Slot Machines (GS) against learned weights (horizontal)."""
    return _acc_vs_K(df, study, "sm-k", "Slot Machines vs traditional training: accuracy vs K",
                     ("slot-gs", "slot-ps"))


def sm_gs_ps(df: pd.DataFrame, study="sm-gs-ps") -> FigureResult:
    """Greedy (GS) vs probabilistic (PS) selection across K."""
    r = _acc_vs_K(df, study, "sm-gs-ps", "Slot Machines: greedy (GS) vs probabilistic (PS)", SLOT)
    r.reading = _gs_ps_reading(r.data) + "; " + r.reading
    return r


def _gs_ps_reading(data: pd.DataFrame) -> str:
    c = data[data["kind"] == "curve"]
    gs = c[c["method"] == "slot-gs"].set_index(["panel", "x"])["mean"]
    ps = c[c["method"] == "slot-ps"].set_index(["panel", "x"])["mean"]
    both = gs.index.intersection(ps.index)
    if not len(both):
        return "no K where both GS and PS finished"
    wins = int((gs[both] > ps[both]).sum())
    gap = float((gs[both] - ps[both]).mean())
    return f"GS above PS at {wins} of {len(both)} (panel, K) points, mean gap {gap:+.1f} pp"


@styled
def sm_finetune(df: pd.DataFrame, study="sm-finetune") -> FigureResult:
    """Equal-budget finetuning: accuracy vs total epochs (slot epochs + finetune epochs); one series
    per finetune start epoch, against the same model trained from scratch for as many epochs."""
    fig_id, title = "sm-finetune", "Finetuning selected weights vs training from scratch"
    f, notes = _prepare(df, study, fig_id)
    f = f[f["method"].isin(("finetune", "dense") + SLOT)].copy()
    if not (f["method"] == "finetune").any():
        raise NoData(f"{fig_id}: no finished finetune trials in {study}")
    ft = f["method"] == "finetune"
    start = f["total_epochs"] - f["epochs"].astype(float)
    f["series"] = ""
    f.loc[ft, "series"] = [f"finetuned from epoch {fmt_x(s)}" if np.isfinite(s) else
                           "finetuned (start unknown)" for s in start[ft]]
    dense = f["method"] == "dense"
    f.loc[dense, "series"] = [f"{lab} from scratch" for lab in dense_label(f[dense])]
    slot = f["method"].isin(SLOT)
    f.loc[slot, "series"] = [method_label(m) for m in f.loc[slot, "method"]]
    f = f[np.isfinite(f["total_epochs"])]
    f["x"] = f["total_epochs"].astype(float)
    pts = points(f)
    fig, data = curve_figure(fig_id, title, pts, None, xlabel="total training epochs",
                             note="finetune x = start epoch + finetune epochs")
    return FigureResult(fig_id, with_accuracy(data, BEST_VAL), fig, _finetune_reading(data),
                        notes=notes, title=title)


def _finetune_reading(data: pd.DataFrame) -> str:
    tol = tolerance(data["sd"])
    ft = data[data["method"] == "finetune"]
    sc = data[data["method"] == "dense"]
    pairs = ft.merge(sc, on=["panel", "x"], suffixes=("", "_scratch"))
    if pairs.empty:
        return (f"{len(ft)} finetune points; no from-scratch trial at the same total epochs to "
                "compare with")
    diff = pairs["mean"] - pairs["mean_scratch"]
    wins = int((diff > tol).sum())
    ties = int((diff.abs() <= tol).sum())
    best = pairs.loc[diff.idxmax()]
    return (f"finetuned above from-scratch at {wins} of {len(pairs)} equal budgets "
            f"({ties} level within {tol:.1f} pp); largest gain {diff.max():+.1f} pp "
            f"({best['panel']}, {best['series']}, {fmt_x(best['x'])} epochs)")


@styled
def sm_related(df: pd.DataFrame, study="sm-related") -> FigureResult:
    """Related works: edge-popup (greedy pruning), Zhou (probabilistic pruning), Slot GS/PS and
    learned weights per CONV-2/4/6. Per (model, method) the best configuration is shown."""
    fig_id, title = "sm-related", "Slot Machines vs pruning random networks"
    f, notes = _prepare(df, study, fig_id)
    f["series"] = [method_label(m) for m in f["method"]]
    dense = f["method"] == "dense"
    f.loc[dense, "series"] = dense_label(f[dense])
    per_point = aggregate(f, ["panel_rank", "panel", "series", "point"])
    first = f.groupby("point")[["method", "k_resolved", "K_resolved", "init_resolved"]].first()
    per_point = per_point.join(first, on="point")
    # Zhou's kept fraction is learned: show the realised one
    per_point = per_point.join(f.groupby("point")["kept_fraction"].mean(), on="point")
    best = per_point.loc[per_point.groupby(["panel", "series"])["mean"].idxmax()]
    best["setting"] = [_setting(r) for _, r in best.iterrows()]
    order = ["edge-popup", "Zhou et al.", "Slot Machines (GS)", "Slot Machines (PS)"]
    rank = {s: i for i, s in enumerate(order)}
    best["series_rank"] = [rank.get(s, len(order)) for s in best["series"]]
    best = best.sort_values(["panel_rank", "series_rank", "series"])
    data = best[["panel", "series", "mean", "sd", "n", "setting", "method"]].reset_index(drop=True)
    data["kind"] = "bar"
    data = with_accuracy(data, BEST_VAL)
    panels = list(dict.fromkeys(data["panel"]))
    series = list(dict.fromkeys(best.sort_values(["series_rank", "series"])["series"]))
    table = pd.DataFrame({"model": panels})
    for s in series:
        col = []
        for p in panels:
            r = data[(data["panel"] == p) & (data["series"] == s)]
            if r.empty:
                col.append("–")
            else:
                r = r.iloc[0]
                sd = f" ± {r['sd']:.1f}" if np.isfinite(r["sd"]) else ""
                col.append(f"{r['mean']:.1f}{sd} (n={int(r['n'])}; {r['setting']})")
        table[s] = col
    # A grouped bar chart of the same numbers: quicker to read than the table.
    fig, axes = new_figure(1, 1, panel=(max(5.0, 1.6 * len(panels) + 2), 3.6))
    ax = axes[0, 0]
    styles = SeriesStyles(series)
    w = 0.8 / max(len(series), 1)
    n_max = int(data["n"].max())
    for j, s in enumerate(series):
        d = data[data["series"] == s].set_index("panel").reindex(panels)
        xs = np.arange(len(panels)) + (j - (len(series) - 1) / 2) * w
        color = "#555555" if s.startswith("learned") else styles[s][0]
        ax.bar(xs, d["mean"], w, yerr=d["sd"].fillna(0), color=color, label=s, capsize=2,
               edgecolor="white", hatch="//" if s.startswith("learned") else None)
    ax.set_xticks(np.arange(len(panels)), panels)
    ax.set_ylabel("test accuracy (%)")
    lo = np.nanmin(data["mean"] - data["sd"].fillna(0))
    ax.set_ylim(max(0, lo - 10), min(100, np.nanmax(data["mean"] + data["sd"].fillna(0)) + 3))
    finish(fig, axes, title, n_max, note="best configuration per method")
    return FigureResult(fig_id, data, fig, _related_reading(data), table=table, notes=notes,
                        title=title)


def _setting(r) -> str:
    m = r["method"]
    if m in SLOT:
        return f"K={fmt_x(r['K_resolved'])}"
    if m == "supermask" and np.isfinite(r.get("kept_fraction", np.nan)):
        return f"{r['kept_fraction'] * 100:.0f}% kept"
    if m == "edgepopup" and np.isfinite(r["k_resolved"]):
        return f"k={fmt_x(r['k_resolved'] * 100)}%"
    return "best"


def _related_reading(data: pd.DataFrame) -> str:
    parts = []
    for panel, g in data.groupby("panel", sort=False):
        top = g.loc[g["mean"].idxmax()]
        parts.append(f"{panel}: {top['series']} best ({top['mean']:.1f}%)")
    return "; ".join(parts)
