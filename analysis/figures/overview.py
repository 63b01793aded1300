"""hiddenlab's own studies at a glance.

`quickstart` (for `make run`): per model, accuracy vs the fraction of weights kept (edge-popup over
k, Zhou at its realised fraction) and accuracy vs K (Slot Machines GS and PS on a log2 axis),
learned dense weights and finetuned selections as horizontal lines. `real-data`: every method at
its recipe defaults against learned dense weights on one real data set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import FigureResult, NoData, aggregate, fmt_x, method_label
from ..results import LAST
from ..style import finish, new_figure, styled
from ._common import (KEPT_LABEL, arch_order, baselines, category_panel, curve_figure, dense_label,
                      label_columns, pct_axis, points, prepare, with_accuracy)

SELECT_K = ("edgepopup", "supermask")
SELECT_KK = ("slot-gs", "slot-ps")


@styled
def quickstart(df: pd.DataFrame, study="quickstart") -> FigureResult:
    """Two rows of panels, one column per model: accuracy vs % kept, accuracy vs K."""
    fig_id, title = "quickstart", "Quickstart: every method on one data set"
    final, notes = prepare(df, study, fig_id, LAST, "hiddenlab's default")
    f = label_columns(final)
    width = f["width_mult"].astype(float) if "width_mult" in f.columns else \
        pd.Series(1.0, index=f.index)
    f["model_name"] = [p if w == 1 else f"{p} ({fmt_x(w)}x)" for p, w in zip(f["panel"], width)]
    order = {m: arch_order(a) for m, a in zip(f["model_name"], f["arch"])}
    f["series"] = [method_label(m) for m in f["method"]]
    dense = f["method"] == "dense"
    f.loc[dense, "series"] = dense_label(f[dense])
    f.loc[f["method"] == "finetune", "series"] = "finetuned (from GS)"

    def rows(kind: str, frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame["panel"] = frame["model_name"] + (": vs k" if kind == "k" else ": vs K")
        frame["panel_rank"] = [(0 if kind == "k" else 1, order[m]) for m in frame["model_name"]]
        return frame

    sel_k = rows("k", f[f["method"].isin(SELECT_K)])
    sel_k["xm"] = np.where(sel_k["method"] == "supermask", sel_k["kept_fraction"].astype(float),
                           sel_k["k_resolved"].astype(float)) * 100
    sel_K = rows("K", f[f["method"].isin(SELECT_KK)])
    sel_K["x"] = sel_K["K_resolved"].astype(float)
    if sel_k.empty and sel_K.empty:
        raise NoData(f"{fig_id}: no finished selection trials in {study}")
    pts = pd.concat([points(sel_k, measured_x="xm") if len(sel_k) else None,
                     points(sel_K) if len(sel_K) else None], ignore_index=True, sort=False)
    pts.loc[pts["method"] != "supermask", "x_sd"] = np.nan
    panels_k, panels_K = set(sel_k["panel"]), set(sel_K["panel"])
    base_k = rows("k", f[dense])
    base_K = rows("K", f[dense | (f["method"] == "finetune")])
    base = pd.concat([baselines(base_k, panels_k), baselines(base_K, panels_K)],
                     ignore_index=True, sort=False)
    xlabel = {p: KEPT_LABEL + " (Zhou: realised)" for p in panels_k}
    xlabel.update({p: "K (values per connection)" for p in panels_K})
    fig, data = curve_figure(fig_id, title, pts, base, xlabel=xlabel,
                             logx2={p: True for p in panels_K},
                             xfmt={p: pct_axis for p in panels_k},
                             ncols=max(1, f["model_name"].nunique()))
    return FigureResult(fig_id, with_accuracy(data, LAST), fig, _reading(data), notes=notes,
                        title=title)


def _reading(data: pd.DataFrame) -> str:
    parts = []
    models = dict.fromkeys(p.rsplit(": vs ", 1)[0] for p in data["panel"])
    for m in models:
        d = data[data["panel"].str.startswith(m + ": vs ")]
        bits = []
        for series, g in d[d["kind"] == "curve"].groupby("series", sort=False):
            best = g.loc[g["mean"].idxmax()]
            where = (f"K={fmt_x(best['x'])}" if g["panel"].iloc[0].endswith("vs K")
                     else f"{best['x']:.0f}% kept")
            bits.append(f"{series} best {best['mean']:.1f}% ({where})")
        for series, g in d[d["kind"] == "baseline"].groupby("series", sort=False):
            bits.append(f"{series} {g['mean'].iloc[0]:.1f}%")
        parts.append(f"{m}: " + ", ".join(bits))
    return "; ".join(parts)


# --- real-data: every method at its recipe defaults on one real data set -------------------------

METHOD_ORDER = ("edgepopup", "supermask", "slot-gs", "slot-ps", "finetune")


@styled
def real_data(df: pd.DataFrame, study="real-data") -> FigureResult:
    """Every method against learned dense weights on real data (the `real-data` study:
    LeNet-300-100 on Fashion-MNIST, each method at its recipe defaults): mean ± sd test accuracy
    per method, dense as a reference line; the table adds the best-validation network's test
    accuracy and the difference to dense."""
    fig_id = "real-data"
    final, notes = prepare(df, study, fig_id, LAST, "hiddenlab's default; the table also gives "
                           "the best-validation network's (`best_val_test_acc`)")
    f = label_columns(final, with_dataset=True)
    f["series"] = dense_label(f)
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    f["method_rank"] = [rank.get(m, len(rank)) for m in f["method"]]
    per = aggregate(f, ["panel_rank", "panel", "method_rank", "series"])
    best = aggregate(f, ["panel", "series"], y="best_val_test_acc")
    per = per.merge(best.rename(columns={"mean": "best_val_mean", "sd": "best_val_sd",
                                         "n": "best_val_n"}).drop(columns="configs",
                                                                  errors="ignore"),
                    on=["panel", "series"], how="left")
    per["method"] = per["series"].map(dict(zip(f["series"], f["method"])))
    dense = per["method"] == "dense"
    per["kind"] = np.where(dense, "baseline", "point")
    if not (~dense).any():
        raise NoData(f"{fig_id}: no finished selection trials in {study}")
    panels = list(dict.fromkeys(per.sort_values("panel_rank")["panel"]))
    title = "Every method on real data: " + ", ".join(panels)
    fig, axes = new_figure(1, len(panels), panel=(5.4, 3.9))
    n_max = int(per["n"].max())
    for ax, panel in zip(axes[0], panels):
        p = per[per["panel"] == panel]
        category_panel(ax, p[p["kind"] == "point"], p[p["kind"] == "baseline"], n_max)
        ax.set_title(panel)
    finish(fig, axes, title, n_max, note="learned dense: horizontal line")
    data = per.drop(columns=["panel_rank", "method_rank"]).reset_index(drop=True)
    return FigureResult(fig_id, with_accuracy(data, LAST), fig, _real_reading(data),
                        table=_real_table(data), notes=notes, title=title)


def _real_table(data: pd.DataFrame) -> pd.DataFrame:
    def cell(m, sd, n):
        return "–" if not np.isfinite(m) else \
            f"{m:.2f}" + (f" ± {sd:.2f}" if np.isfinite(sd) else "") + f" (n={int(n)})"

    rows = []
    for _, r in data.iterrows():
        ref = data[(data["panel"] == r["panel"]) & (data["method"] == "dense")]["mean"]
        diff = r["mean"] - ref.iloc[0] if len(ref) and r["method"] != "dense" else np.nan
        rows.append({"panel": r["panel"], "method": r["series"],
                     "test acc, last epoch (%)": cell(r["mean"], r["sd"], r["n"]),
                     "test acc, best validation epoch (%)":
                         cell(r["best_val_mean"], r["best_val_sd"], r["best_val_n"]),
                     "vs learned dense (pp)": "–" if not np.isfinite(diff) else f"{diff:+.2f}"})
    return pd.DataFrame(rows)


def _real_reading(data: pd.DataFrame) -> str:
    parts = []
    for panel, g in data.groupby("panel", sort=False):
        pts, dense = g[g["kind"] == "point"], g[g["kind"] == "baseline"]
        if pts.empty:
            continue
        top = pts.loc[pts["mean"].idxmax()]
        text = f"{panel}: best selection method {top['series']} {top['mean']:.1f}%"
        if not dense.empty:
            d = dense.iloc[0]
            text += (f", {top['mean'] - d['mean']:+.1f} pp against {d['series']} "
                     f"({d['mean']:.1f}%); " + ", ".join(
                         f"{r['series']} {r['mean'] - d['mean']:+.1f}"
                         for _, r in pts.iterrows() if r["series"] != top["series"]))
        parts.append(text)
    return "; ".join(parts)
