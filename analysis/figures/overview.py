"""The quickstart study at a glance (hiddenlab's own, for `make run`): per model, accuracy vs the
fraction of weights kept (edge-popup over k, Zhou at its realised fraction) and accuracy vs K
(Slot Machines GS and PS on a log2 axis), learned dense weights and finetuned selections as
horizontal lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import FigureResult, NoData, fmt_x, method_label
from ..style import styled
from ._common import (KEPT_LABEL, arch_order, baselines, curve_figure, dense_label, label_columns,
                      pct_axis, points, prepare)

SELECT_K = ("edgepopup", "supermask")
SELECT_KK = ("slot-gs", "slot-ps")


@styled
def quickstart(df: pd.DataFrame, study="quickstart") -> FigureResult:
    """Two rows of panels, one column per model: accuracy vs % kept, accuracy vs K."""
    fig_id, title = "quickstart", "Quickstart: every method on one data set"
    f = label_columns(prepare(df, study, fig_id))
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
    realised = sel_k["kept_fraction"].astype(float) if "kept_fraction" in sel_k.columns else \
        sel_k["k_resolved"].astype(float)
    sel_k["xm"] = np.where(sel_k["method"] == "supermask", realised,
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
    return FigureResult(fig_id, data, fig, _reading(data), title=title)


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
