"""Scaling laws (beyond the papers): test error against width multiplier, sub-network parameters
and K, fitted as power laws error = a * x^(-alpha) per method and model, with bootstrap
confidence intervals on alpha, and one table of exponents.

A fit series is a set of trials identical except for the axis variable (and the seed); for the
parameter axis, width, depth and k may all vary (they all change the sub-network size). A series
needs at least 3 distinct x values. The fit is ordinary least squares of log error on log x over
all trials (not over means, so seeds weigh in); the bootstrap resamples seeds within each x
(stratified, so every x stays represented) and reports the 2.5 / 97.5 percentiles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import FigureResult, NoData, aggregate, fmt_x, init_label, method_label, model_label
from ..results import config_key
from matplotlib.ticker import FuncFormatter

from ..style import SeriesStyles, finish, log2_axis, new_figure, styled, tex
from ._common import label_columns, prepare

AXES = [
    # (id, column, x label, config fields that may vary along the axis)
    ("width", "width_mult", "width multiplier", ("width_mult",)),
    ("params", "subnet_params", "sub-network parameters", ("width_mult", "depth", "k_resolved")),
    ("K", "K_resolved", "K (values per connection)", ("K_resolved",)),
]
TITLES = {"width": "width", "params": "sub-network size", "K": "K"}
MIN_POINTS = 3
ERR_FLOOR = 1e-4  # a perfect trial would have log(0) error


def fit_power_law(x, err, groups=None, n_boot: int = 1000, seed: int = 0) -> dict:
    """Fit err = a * x^-alpha by least squares in log-log space.

    `groups` labels which trials share an x (the bootstrap resamples within each group). Returns
    alpha, a, r2 and the 95% bootstrap interval (alpha_lo, alpha_hi, and per-bootstrap (log a,
    slope) pairs for bands)."""
    lx = np.log(np.asarray(x, float))
    ly = np.log(np.clip(np.asarray(err, float), ERR_FLOOR, None))
    slope, icpt = np.polyfit(lx, ly, 1)
    pred = icpt + slope * lx
    ss_res, ss_tot = ((ly - pred) ** 2).sum(), ((ly - ly.mean()) ** 2).sum()
    out = {"alpha": -slope, "a": float(np.exp(icpt)), "r2": 1 - ss_res / ss_tot if ss_tot > 0 else 1.0,
           "n_trials": len(lx), "n_points": len(np.unique(lx))}
    groups = np.asarray(groups if groups is not None else lx)
    rng = np.random.default_rng(seed)
    # Stratified resampling, vectorised: for each x group draw len(group) indices per bootstrap.
    idx = np.concatenate([rng.choice(np.flatnonzero(groups == g), size=(n_boot, (groups == g).sum()))
                          for g in np.unique(groups)], axis=1)
    bx, by = lx[idx], ly[idx]
    mx, my = bx.mean(1, keepdims=True), by.mean(1, keepdims=True)
    var = ((bx - mx) ** 2).sum(1)
    slopes = np.where(var > 0, ((bx - mx) * (by - my)).sum(1) / np.where(var > 0, var, 1), np.nan)
    icpts = my[:, 0] - slopes * mx[:, 0]
    out["alpha_lo"], out["alpha_hi"] = (float(v) for v in -np.nanpercentile(slopes, [97.5, 2.5]))
    out["boot"] = np.stack([icpts, slopes], axis=1)
    return out


def _series_label(g: pd.DataFrame, varying: set) -> str:
    r = g.iloc[0]
    parts = [method_label(r["method"], r.get("optimizer")), model_label(r["arch"])]
    if "init" in varying:
        parts.append(init_label(r["init_resolved"]))
    if "k" in varying and r["method"] in ("edgepopup", "supermask"):
        parts.append(f"k={fmt_x(r['k_resolved'] * 100)}%")
    if "K" in varying and r["method"] in ("slot-gs", "slot-ps"):
        parts.append(f"K={fmt_x(r['K_resolved'])}")
    return " ".join(parts)


def _fits(f: pd.DataFrame, n_boot: int):
    """All fit series of every axis: (points frame, exponent rows, curve frames for drawing)."""
    pts_all, rows, curves = [], [], []
    for axis, col, _, varying in AXES:
        if col not in f.columns:
            continue
        d = f[f[col].notna() & (f[col].astype(float) > 0)].copy()
        if d.empty:
            continue
        d["series_key"] = config_key(d, exclude=varying)
        d["xv"] = d[col].astype(float)
        if axis == "params":  # the x of a point is its config's mean realised size
            d["xv"] = d.groupby("point")["xv"].transform("mean")
        groups = [g for _, g in d.groupby("series_key") if g["xv"].nunique() >= MIN_POINTS]
        if not groups:
            continue
        # Name series by what tells them apart on this axis.
        varying_names = set()
        for field, c in (("init", "init_resolved"), ("k", "k_resolved"), ("K", "K_resolved")):
            if c in varying:  # the axis itself: not part of a series name
                continue
            keys = pd.concat(groups)[["method", "arch", c]].astype(str).drop_duplicates()
            if keys.duplicated(["method", "arch"]).any():
                varying_names.add(field)
        for g in groups:
            label = _series_label(g, varying_names)
            err = 1 - g["acc"].astype(float)
            fit = fit_power_law(g["xv"], err, groups=g["point"], n_boot=n_boot)
            r0 = g.iloc[0]
            rows.append({"axis": axis, "series": label, "method": r0["method"],
                         "model": r0["arch"], "init": r0["init_resolved"],
                         "alpha": fit["alpha"], "alpha_lo": fit["alpha_lo"],
                         "alpha_hi": fit["alpha_hi"], "a": fit["a"], "r2": fit["r2"],
                         "points": fit["n_points"], "trials": fit["n_trials"],
                         "x_min": g["xv"].min(), "x_max": g["xv"].max()})
            p = aggregate(g.assign(err=err), ["xv"], y="err")
            p = p.rename(columns={"xv": "x"})
            p.insert(0, "series", label)
            p.insert(0, "panel", axis)
            pts_all.append(p)
            xs = np.geomspace(g["xv"].min(), g["xv"].max(), 40)
            preds = np.exp(fit["boot"][:, :1] + fit["boot"][:, 1:] * np.log(xs)[None, :])
            lo, hi = np.nanpercentile(preds, [2.5, 97.5], axis=0)
            curves.append(pd.DataFrame({"panel": axis, "series": label, "x": xs,
                                        "fit": fit["a"] * xs ** (-fit["alpha"]) * 100,
                                        "lo": lo * 100, "hi": hi * 100}))
    if not rows:
        return None, None, None
    return pd.concat(pts_all, ignore_index=True), pd.DataFrame(rows), pd.concat(curves)


@styled
def scaling_laws(df: pd.DataFrame, study="scaling-laws", n_boot: int = 1000) -> FigureResult:
    """Power-law fits of error vs width, sub-network parameters and K (log-log), with 95%
    bootstrap bands; `extra['exponents']` is the table of exponents."""
    fig_id, title = "scaling-laws", "Scaling laws: test error vs size"
    f = label_columns(prepare(df, study, fig_id))
    pts, exps, curves = _fits(f, n_boot)
    if pts is None:
        raise NoData(f"{fig_id}: no series with >= {MIN_POINTS} distinct widths, sizes or K "
                     f"in {study}")
    axes_used = [a for a in AXES if a[0] in set(pts["panel"])]
    fig, axes = new_figure(1, len(axes_used), panel=(3.8, 3.3), extra_h=1.0)
    n_max = int(pts["n"].max())
    styles = SeriesStyles(list(dict.fromkeys(pts["series"])))
    for ax, (axis, col, xlabel, _) in zip(np.ravel(axes), axes_used):
        for s, g in pts[pts["panel"] == axis].groupby("series", sort=True):
            color, marker = styles[s]
            e = exps[(exps["axis"] == axis) & (exps["series"] == s)].iloc[0]
            ax.errorbar(g["x"], g["mean"], yerr=g["sd"].fillna(0), fmt=marker, color=color,
                        capsize=2, ms=5,
                        label=tex(f"{s}: α={e['alpha']:.2f} "
                                  f"[{e['alpha_lo']:.2f}, {e['alpha_hi']:.2f}]"))
            c = curves[(curves["panel"] == axis) & (curves["series"] == s)]
            ax.plot(c["x"], c["fit"], color=color, lw=1.3)
            ax.fill_between(c["x"], c["lo"], c["hi"], color=color, alpha=0.15, lw=0)
        if axis == "K":
            log2_axis(ax, pts.loc[pts["panel"] == axis, "x"])
        else:
            ax.set_xscale("log", base=2 if axis == "width" else 10)
        if axis == "width":
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test error (%)")
        ax.set_title(f"error vs {TITLES[axis]}")
        ax.legend(fontsize=6.5, loc="best")
    finish(fig, axes, title, n_max, legend=False,
           note="lines: power-law fit, bands: 95% bootstrap")
    data = pts.assign(kind="curve")[["panel", "series", "kind", "x", "mean", "sd", "n"]]
    table = exps.copy()
    table["alpha (95% CI)"] = [f"{a:.3f} [{lo:.3f}, {hi:.3f}]" for a, lo, hi in
                              zip(exps["alpha"], exps["alpha_lo"], exps["alpha_hi"])]
    table["range"] = [f"{fmt_x(lo)}–{fmt_x(hi)}" for lo, hi in zip(exps["x_min"], exps["x_max"])]
    table = table[["axis", "series", "alpha (95% CI)", "r2", "points", "trials", "range"]]
    table["r2"] = table["r2"].map(lambda v: f"{v:.2f}")
    steep = exps.loc[exps["alpha"].idxmax()]
    reading = (f"{len(exps)} power-law fits; steepest: {steep['series']} vs {steep['axis']} "
               f"(error ∝ x^-{steep['alpha']:.2f}, 95% CI [{steep['alpha_lo']:.2f}, "
               f"{steep['alpha_hi']:.2f}])")
    flat = exps[exps["alpha_lo"] <= 0]
    if len(flat):
        reading += f"; {len(flat)} fit(s) not distinguishable from flat"
    return FigureResult(fig_id, data.reset_index(drop=True), fig, reading, table=table,
                        extra={"exponents": exps.reset_index(drop=True)}, title=title)
