"""The machinery the accuracy-vs-x figures share: pick a study's finished trials, label panels and
series, aggregate seeds into points, draw panels with bands and baselines, and read the trend.

Points are (panel, series, x) groups; the CSV of a figure is exactly the frame `curve_figure`
draws, with `kind` = curve | baseline.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..core import (NoData, aggregate, dataset_label, init_label,
                    method_label, model_label, natural_key)
from ..results import ACCURACY, LAST, final_results, one_scale, select_study, use_accuracy
from ..style import (SeriesStyles, baseline_styles, draw_baselines, draw_series, finish,
                     hide_unused, log2_axis, new_figure, tex)
from ..trends import compare, phrase, tolerance

ACC_LABEL = "test accuracy (%)"
TOP1_LABEL = "top-1 accuracy (%)"
KEPT_LABEL = "weights kept (%)"

_FAMILY = [r"^(lenet|fc)", r"^conv", r"^slot-?conv", r"^vgg", r"^resnet", r"^(wrn|wide)"]


def arch_order(arch: str):
    a = str(arch).lower()
    rank = next((i for i, pat in enumerate(_FAMILY) if re.search(pat, a)), len(_FAMILY))
    return (rank, natural_key(a))


def prepare(df: pd.DataFrame, study, fig_id: str, accuracy: str = LAST,
            why: str = "") -> tuple[pd.DataFrame, list[str]]:
    """Finished trials of `study` (None: the whole frame) at one scale (`one_scale`: the largest
    present) with `acc` from the `accuracy` column, and the notes saying which accuracy that is
    (`why`: the reason); NoData naming what is missing."""
    final = final_results(one_scale(select_study(df, study))[0])
    if final.empty:
        where = f"study {study}" if study else "the frame"
        raise NoData(f"{fig_id}: no finished trials in {where}")
    final, fallback = use_accuracy(final, accuracy)
    note = f"accuracy: test accuracy of {ACCURACY[accuracy]} (`{accuracy}`)" + \
        (f"; {why}" if why else "")
    notes = [note]
    if fallback:
        notes.append(f"{fallback} trials have no `{accuracy}` (exported before it was recorded): "
                     f"their last-epoch `{LAST}` is used")
    return final, notes


def with_accuracy(data: pd.DataFrame, accuracy: str) -> pd.DataFrame:
    """The plotted frame with the accuracy column it was computed from (for the CSV)."""
    return data.assign(accuracy=accuracy)


def label_columns(f: pd.DataFrame, with_dataset: bool = False) -> pd.DataFrame:
    """Add `panel` (model label, optionally with data set) in paper order and `panel_rank`."""
    # The exporter's bookkeeping has a `series` column (the study's own label): keep it apart.
    f = f.rename(columns={"series": "study_series", "panel": "study_panel"})
    f["panel"] = [model_label(a) + (f" ({dataset_label(d)})" if with_dataset else "")
                  for a, d in zip(f["arch"], f.get("dataset", pd.Series("", index=f.index)))]
    ranks = {p: arch_order(a) for p, a in zip(f["panel"], f["arch"])}
    f["panel_rank"] = f["panel"].map(lambda p: ranks[p])
    return f


def dense_label(f: pd.DataFrame) -> pd.Series:
    opt = f["optimizer"] if "optimizer" in f.columns else pd.Series(None, index=f.index)
    return pd.Series([method_label(m, o) for m, o in zip(f["method"], opt)], index=f.index)


def init_series(f: pd.DataFrame, with_method: bool = False) -> pd.Series:
    out = [init_label(i) for i in f["init_resolved"]]
    if with_method:
        out = [f"{method_label(m)} {s}" for m, s in zip(f["method"], out)]
    return pd.Series(out, index=f.index)


def panel_list(*frames) -> list[str]:
    ranks = {}
    for fr in frames:
        if fr is not None and not fr.empty:
            for p, r in zip(fr["panel"], fr["panel_rank"]):
                ranks[p] = r
    return sorted(ranks, key=lambda p: ranks[p])


def points(lines: pd.DataFrame, x: str = "x", measured_x: str | None = None,
           keep=("method", "init_resolved")) -> pd.DataFrame:
    """Seeds -> points: per (panel, series, x) or, for a measured x, per (panel, series, config)."""
    if lines.empty:
        return pd.DataFrame(columns=["panel", "series", "x", "mean", "sd", "n"])
    keep = [c for c in keep if c in lines.columns]
    if measured_x:
        pts = aggregate(lines, ["panel_rank", "panel", "series", "point"], x=measured_x, scale=1.0)
        acc = aggregate(lines, ["panel_rank", "panel", "series", "point"])
        pts[["mean", "sd"]] = acc[["mean", "sd"]]
    else:
        pts = aggregate(lines, ["panel_rank", "panel", "series", x])
        if x != "x":
            pts = pts.rename(columns={x: "x"})
    if keep:
        by = ["panel", "series"] + (["point"] if measured_x else [])
        first = lines.groupby(by, dropna=False)[keep].first().reset_index()
        pts = pts.merge(first, on=by, how="left")
    return pts


def baselines(base: pd.DataFrame, panels) -> pd.DataFrame:
    if base is None or base.empty:
        return pd.DataFrame(columns=["panel", "series", "mean", "sd", "n"])
    base = base[base["panel"].isin(panels)]
    return aggregate(base, ["panel_rank", "panel", "series"])


def curve_figure(fig_id: str, title: str, pts: pd.DataFrame, base: pd.DataFrame | None = None, *,
                 xlabel, ylabel: str = ACC_LABEL, logx2=False,
                 linestyle_by: str | None = None, ncols: int | None = None,
                 xfmt=None, note: str = "") -> tuple[object, pd.DataFrame]:
    """Draw one panel per `panel`; return (figure, the plotted frame). `xlabel`, `logx2` and
    `xfmt` may be dicts keyed by panel (panels of one figure with different x axes)."""
    base = base if base is not None else pd.DataFrame(columns=["panel", "series", "mean", "sd", "n"])
    panels = panel_list(pts, base)
    if not panels:
        raise NoData(f"{fig_id}: nothing to plot")
    ncols = ncols or min(len(panels), 4)
    nrows = int(np.ceil(len(panels) / ncols))
    # A lone panel gets more room: the title and legend need the width.
    fig, axes = new_figure(nrows, ncols, panel=(5.2, 3.8) if len(panels) == 1 else (3.4, 2.9))
    n_max = int(max(pts["n"].max() if len(pts) else 0, base["n"].max() if len(base) else 0))
    styles = SeriesStyles(list(dict.fromkeys(pts["series"])))
    bstyles = baseline_styles(base["series"])
    for ax, panel in zip(np.ravel(axes), panels):
        p = pts[pts["panel"] == panel]
        draw_panel(ax, p, base[base["panel"] == panel], styles, bstyles, n_max,
                   linestyle_by=linestyle_by)
        ax.set_title(panel)
        ax.set_xlabel(_per_panel(xlabel, panel))
        ax.set_ylabel(_per_panel(ylabel, panel))
        if _per_panel(logx2, panel):
            log2_axis(ax, p["x"])
        if _per_panel(xfmt, panel):
            _per_panel(xfmt, panel)(ax)
    hide_unused(axes, len(panels))
    finish(fig, axes, title, n_max, note=note)
    data = pd.concat([pts.assign(kind="curve"), base.assign(kind="baseline", x=np.nan)],
                     ignore_index=True, sort=False)
    data["panel_rank"] = data["panel"].map({p: i for i, p in enumerate(panels)})
    data = data.sort_values(["panel_rank", "kind", "series", "x"], kind="stable")
    front = ["panel", "series", "kind", "x", "x_sd", "mean", "sd", "n"]
    data = data[[c for c in front if c in data.columns] +
                [c for c in data.columns if c not in front and c != "panel_rank"]]
    return fig, data.reset_index(drop=True)


def draw_panel(ax, pts, base, styles, bstyles, n_max: int, linestyle_by=None) -> None:
    """One panel: a line ± 1 sd per series, baselines as horizontal lines, n beside points with
    fewer than `n_max` seeds."""
    draw_series(ax, pts, styles, linestyle_by=linestyle_by, annotate_below=n_max)
    draw_baselines(ax, base, annotate_below=n_max, styles=bstyles)


def category_panel(ax, pts: pd.DataFrame, base: pd.DataFrame, n_max: int,
                   ylabel: str = ACC_LABEL) -> None:
    """Mean ± 1 sd per series as points on a categorical x (one per series, in the frame's
    order), baselines (e.g. learned dense) as horizontal reference lines with their band."""
    styles = SeriesStyles(list(pts["series"]))
    for i, (_, r) in enumerate(pts.iterrows()):
        color, marker = styles[r["series"]]
        ax.errorbar([i], [r["mean"]], yerr=[0 if not np.isfinite(r["sd"]) else r["sd"]],
                    fmt=marker, color=color, capsize=4, ms=7, lw=1.6)
        ax.annotate(f"{r['mean']:.1f}" + (f"\nn={int(r['n'])}" if r["n"] < n_max else ""),
                    (i, r["mean"]), textcoords="offset points", xytext=(8, -4), fontsize=7,
                    color=color)
    draw_baselines(ax, base, annotate_below=n_max)
    ax.set_xticks(range(len(pts)), [tex(s) for s in pts["series"]], rotation=20, ha="right")
    ax.set_xlim(-0.6, len(pts) - 0.4)
    ax.set_ylabel(ylabel)


def _per_panel(option, panel):
    return option.get(panel) if isinstance(option, dict) else option


def curve_reading(data: pd.DataFrame, xname: str, xunit: str = "") -> str:
    """Per panel: the best series' trend, and where its best point sits against the best
    baseline. Joined with '; '."""
    parts = []
    curves, base = data[data["kind"] == "curve"], data[data["kind"] == "baseline"]
    tol = tolerance(curves["sd"])
    for panel in dict.fromkeys(data["panel"]):
        c = curves[curves["panel"] == panel]
        if c.empty:
            continue
        best = c.groupby("series")["mean"].mean().idxmax()
        s = c[c["series"] == best]
        text = f"{panel}: {best} {phrase(s['x'], s['mean'], xname, tol, xunit=xunit)}"
        b = base[base["panel"] == panel]
        if not b.empty:
            top = b.loc[b["mean"].idxmax()]
            text += (f", best {compare(s['mean'].max(), top['mean'], tol)} "
                     f"{top['series']} {top['mean']:.1f}%")
        parts.append(text)
    return "; ".join(parts)


def pct_axis(ax):
    ax.set_xlim(0, 100)
