"""Follow-up methods against edge-popup: IteRand (study `iterand-k`) and biprop (`biprop-k`),
test accuracy against the % of weights kept, one line per method.

Lines are named from each trial's config (method, IteRand's r, the init), not from the study's
series labels: a trial two series share (IteRand at r = 0.1, k = 50%) then sits on both lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import FigureResult, NoData, aggregate, fmt_x, init_label, method_label
from ..results import final_results, one_scale, select_study
from ..style import styled
from ._common import ACC_LABEL, KEPT_LABEL, curve_figure, curve_reading, label_columns, pct_axis

NAMES = {"iterand": "IteRand", "biprop": "biprop (MPT-1/32)"}


def _final(df: pd.DataFrame, study: str, fig_id: str, methods) -> pd.DataFrame:
    f = final_results(one_scale(select_study(df, study))[0])
    if not f.empty:
        f = f[f["method"].isin(methods)]
    if f.empty or not (f["method"] != "edgepopup").any():
        raise NoData(f"{fig_id}: no finished {' or '.join(methods)} trials in {study}")
    return label_columns(f)


def _name(method: str) -> str:
    return NAMES.get(method, method_label(method))


def _curves(lines: pd.DataFrame, panel: str, rank, x: pd.Series) -> pd.DataFrame:
    lines = lines.assign(panel=panel, panel_rank=[rank] * len(lines), x=x)
    return aggregate(lines, ["panel_rank", "panel", "series", "x"])


def _symlog(ax) -> None:
    # r spans 0 and 0.01..1: linear below 0.01, logarithmic above
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlim(-0.002, 1.5)


# --- IteRand -------------------------------------------------------------------------------------
@styled
def iterand_k(df: pd.DataFrame, study: str = "iterand-k"):
    """Left: accuracy vs % kept, edge-popup and IteRand at every r swept over k. Right (per k
    where r is swept): accuracy vs r, edge-popup at that k as the horizontal reference."""
    fig_id, title = "iterand-k", "IteRand vs edge-popup (Conv6, CIFAR-10)"
    f = _final(df, study, fig_id, ("iterand", "edgepopup"))
    f["r"] = f["rerand_rate"].astype(float) if "rerand_rate" in f.columns else np.nan
    ep, it = f[f["method"] == "edgepopup"].copy(), f[f["method"] == "iterand"].copy()
    ep["series"] = _name("edgepopup")
    it["series"] = [f"IteRand r={fmt_x(r)}" for r in it["r"]]
    over_k = it.groupby("r")["k_resolved"].transform("nunique") > 1
    over_r = it.groupby("k_resolved")["r"].transform("nunique") > 1
    pts, base, xlabels, xfmts = [], [], {}, {}
    for model in dict.fromkeys(f["panel"]):
        rank = f.loc[f["panel"] == model, "panel_rank"].iloc[0]
        panel = f"{model}: % kept"
        rows = pd.concat([ep[ep["panel"] == model], it[over_k & (it["panel"] == model)]])
        pts.append(_curves(rows, panel, (rank, 0), rows["k_resolved"].astype(float) * 100))
        xlabels[panel], xfmts[panel] = KEPT_LABEL, pct_axis
        for k, sweep in it[over_r & (it["panel"] == model)].groupby("k_resolved"):
            panel = f"{model}, k={fmt_x(k * 100)}%: r"
            sweep = sweep.assign(series=f"IteRand k={fmt_x(k * 100)}%")
            pts.append(_curves(sweep, panel, (rank, 1, k), sweep["r"]))
            ref = ep[(ep["panel"] == model) & np.isclose(ep["k_resolved"].astype(float), k)]
            if len(ref):
                ref = ref.assign(panel=panel, panel_rank=[(rank, 1, k)] * len(ref),
                                 series=f"edge-popup k={fmt_x(k * 100)}%")
                base.append(aggregate(ref, ["panel_rank", "panel", "series"]))
            xlabels[panel], xfmts[panel] = "re-randomisation rate r", _symlog
    pts = pd.concat(pts, ignore_index=True)
    base = pd.concat(base, ignore_index=True) if base else None
    fig, data = curve_figure(fig_id, title, pts, base, xlabel=xlabels, ylabel=ACC_LABEL,
                             xfmt=xfmts)
    reading = curve_reading(data[data["panel"].str.endswith("% kept")], "k", "%")
    return FigureResult(fig_id, data, fig, reading + _gap(data, "IteRand r=0.1", "edge-popup"),
                        title=title)


# --- biprop ---------------------------------------------------------------------------------------
@styled
def biprop_k(df: pd.DataFrame, study: str = "biprop-k"):
    """Accuracy vs % kept per model, biprop and edge-popup, each with its init."""
    fig_id, title = "biprop-k", "biprop (MPT-1/32) vs edge-popup (CIFAR-10)"
    f = _final(df, study, fig_id, ("biprop", "edgepopup"))
    f["series"] = [f"{_name(m)}, {init_label(i)}" for m, i in zip(f["method"], f["init_resolved"])]
    pts = aggregate(f.assign(x=f["k_resolved"].astype(float) * 100),
                    ["panel_rank", "panel", "series", "x"])
    fig, data = curve_figure(fig_id, title, pts, None, xlabel=KEPT_LABEL, xfmt=pct_axis)
    first = lambda prefix: next((s for s in data["series"] if s.startswith(prefix)), "")  # noqa: E731
    gap = _gap(data, first("biprop"), first("edge-popup"))
    return FigureResult(fig_id, data, fig, curve_reading(data, "k", "%") + gap, title=title)


def _gap(data: pd.DataFrame, a: str, b: str) -> str:
    """'; <a> − <b>: +1.2 pp on average over the k both have (Conv6)' per panel."""
    out = []
    curves = data[data["kind"] == "curve"]
    for panel, g in curves.groupby("panel", sort=False):
        sa = g[g["series"] == a].set_index("x")["mean"]
        sb = g[g["series"] == b].set_index("x")["mean"]
        both = sa.index.intersection(sb.index)
        if len(both):
            out.append(f"{panel} {(sa[both] - sb[both]).mean():+.1f} pp")
    return f"; {a} − {b} over the k both have: " + ", ".join(out) if out else ""
