"""Scaling laws (beyond the papers): test error against width multiplier, depth, sub-network
parameters and K, fitted as power laws error = a * x^(-alpha) per method and model, with bootstrap
confidence intervals on alpha, and one table of exponents. `fit_series` / `draw_fits` fit and draw
any axes (the generic figure of a user's study uses them for every numeric field it varies).

A fit series is a set of trials identical except for the axis variable (and the seed); for the
parameter axis, width, depth and k may all vary (they all change the sub-network size). A series
needs at least 3 distinct x values. The fit is ordinary least squares of log error on log x over
all trials (not over means, so seeds weigh in); the bootstrap resamples seeds within each x
(stratified, so every x stays represented) and reports the 2.5 / 97.5 percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from ..core import FigureResult, NoData, aggregate, fmt_x, init_label, method_label, model_label
from ..results import LAST, config_key
from ..style import SeriesStyles, finish, log2_axis, new_figure, styled, tex
from ._common import label_columns, prepare, with_accuracy


@dataclass(frozen=True)
class Axis:
    """One x of the fits: `column` of the final rows, and the config fields that may change
    along it (the rest of the configuration stays fixed within a fit series)."""

    id: str
    column: str
    label: str
    varying: tuple[str, ...]
    title: str


AXES = [
    Axis("width", "width_mult", "width multiplier", ("width_mult",), "width"),
    Axis("depth", "depth", "depth (layers)", ("depth",), "depth"),
    Axis("params", "subnet_params", "sub-network parameters", ("width_mult", "depth", "k"),
         "sub-network size"),
    Axis("K", "K", "K (values per connection)", ("K",), "K"),
]
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


def _series_label(g: pd.DataFrame, varying: set, axis: Axis) -> str:
    r = g.iloc[0]
    # Along a depth axis the architecture changes within the series: name the family.
    arch = r["model"] if "depth" in axis.varying and g["arch"].nunique() > 1 else r["arch"]
    parts = [method_label(r["method"], r.get("optimizer")), model_label(arch)]
    if "init" in varying:
        parts.append(init_label(r["init_resolved"]))
    if "k" in varying and r["method"] in ("edgepopup", "supermask"):
        parts.append(f"k={fmt_x(r['k_resolved'] * 100)}%")
    if "K" in varying and r["method"] in ("slot-gs", "slot-ps"):
        parts.append(f"K={fmt_x(r['K_resolved'])}")
    return " ".join(parts)


def _names_that_vary(groups: list[pd.DataFrame], axis: Axis) -> set:
    """Which of init, k, K tell the series of this axis apart (they go into the labels)."""
    out = set()
    for name, col in (("init", "init_resolved"), ("k", "k_resolved"), ("K", "K_resolved")):
        if name in axis.varying:  # the axis itself: not part of a series name
            continue
        keys = pd.concat(groups)[["method", "arch", col]].astype(str).drop_duplicates()
        if keys.duplicated(["method", "arch"]).any():
            out.add(name)
    return out


def fit_series(f: pd.DataFrame, axes=AXES, n_boot: int = 1000, label=None):
    """Power-law fits of error (1 - acc) on every axis of `axes` for the finished trials `f`:
    (points frame, exponent rows, fitted curves with their 95% bands), or (None, None, None).

    A series is a set of trials identical except for the axis' fields and the seed, with at
    least MIN_POINTS distinct x. `label(group, axis)` names a series (default: method, model and
    what tells series apart)."""
    pts_all, rows, curves = [], [], []
    for axis in axes:
        if axis.column not in f.columns:
            continue
        d = f[f[axis.column].notna()].copy()
        d = d[d[axis.column].astype(float) > 0]
        if d.empty:
            continue
        d["series_key"] = config_key(d, exclude=axis.varying)
        d["xv"] = d[axis.column].astype(float)
        # A measured x (sub-network size) is its configuration's mean over seeds.
        d["xv"] = d.groupby("point")["xv"].transform("mean")
        groups = [g for _, g in d.groupby("series_key") if g["xv"].nunique() >= MIN_POINTS]
        if not groups:
            continue
        names = _names_that_vary(groups, axis)
        seen: set[str] = set()
        for g in groups:
            name = label(g, axis) if label else _series_label(g, names, axis)
            if name in seen:  # two configurations the label does not tell apart: name both
                name += f" [{g['series_key'].iloc[0][:6]}]"
            seen.add(name)
            p, row, curve = _fit_one(g, axis, name, n_boot)
            pts_all.append(p)
            rows.append(row)
            curves.append(curve)
    if not rows:
        return None, None, None
    return pd.concat(pts_all, ignore_index=True), pd.DataFrame(rows), pd.concat(curves)


def _fit_one(g: pd.DataFrame, axis: Axis, name: str, n_boot: int):
    err = 1 - g["acc"].astype(float)
    fit = fit_power_law(g["xv"], err, groups=g["point"], n_boot=n_boot)
    r0 = g.iloc[0]
    row = {"axis": axis.id, "series": name, "method": r0["method"], "model": r0["arch"],
           "init": r0["init_resolved"], "alpha": fit["alpha"], "alpha_lo": fit["alpha_lo"],
           "alpha_hi": fit["alpha_hi"], "a": fit["a"], "r2": fit["r2"],
           "points": fit["n_points"], "trials": fit["n_trials"],
           "x_min": g["xv"].min(), "x_max": g["xv"].max()}
    p = aggregate(g.assign(err=err), ["xv"], y="err").rename(columns={"xv": "x"})
    p.insert(0, "series", name)
    p.insert(0, "panel", axis.id)
    xs = np.geomspace(g["xv"].min(), g["xv"].max(), 40)
    preds = np.exp(fit["boot"][:, :1] + fit["boot"][:, 1:] * np.log(xs)[None, :])
    lo, hi = np.nanpercentile(preds, [2.5, 97.5], axis=0)
    curve = pd.DataFrame({"panel": axis.id, "series": name, "x": xs,
                          "fit": fit["a"] * xs ** (-fit["alpha"]) * 100,
                          "lo": lo * 100, "hi": hi * 100})
    return p, row, curve


def draw_fits(ax_list, axes, pts, exps, curves, styles: SeriesStyles) -> None:
    """One log-log panel per axis of `axes` (in `ax_list`): points ± sd, fit lines and 95%
    bootstrap bands, the exponent and its interval in the legend."""
    for ax, axis in zip(ax_list, axes):
        for s, g in pts[pts["panel"] == axis.id].groupby("series", sort=True):
            color, marker = styles[s]
            e = exps[(exps["axis"] == axis.id) & (exps["series"] == s)].iloc[0]
            ax.errorbar(g["x"], g["mean"], yerr=g["sd"].fillna(0), fmt=marker, color=color,
                        capsize=2, ms=5,
                        label=tex(f"{s}: α={e['alpha']:.2f} "
                                  f"[{e['alpha_lo']:.2f}, {e['alpha_hi']:.2f}]"))
            c = curves[(curves["panel"] == axis.id) & (curves["series"] == s)]
            ax.plot(c["x"], c["fit"], color=color, lw=1.3)
            ax.fill_between(c["x"], c["lo"], c["hi"], color=color, alpha=0.15, lw=0)
        xs = pts.loc[pts["panel"] == axis.id, "x"]
        if axis.id == "K":
            log2_axis(ax, xs)
        else:
            ax.set_xscale("log", base=2 if xs.max() / xs.min() <= 64 else 10)
            if xs.max() / xs.min() <= 64:
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xlabel(axis.label)
        ax.set_ylabel("test error (%)")
        ax.set_title(f"error vs {axis.title}")
        ax.legend(fontsize=6.5, loc="best")


def exponent_table(exps: pd.DataFrame) -> pd.DataFrame:
    table = exps.copy()
    table["alpha (95% CI)"] = [f"{a:.3f} [{lo:.3f}, {hi:.3f}]" for a, lo, hi in
                              zip(exps["alpha"], exps["alpha_lo"], exps["alpha_hi"])]
    table["range"] = [f"{fmt_x(lo)}–{fmt_x(hi)}" for lo, hi in zip(exps["x_min"], exps["x_max"])]
    table = table[["axis", "series", "alpha (95% CI)", "r2", "points", "trials", "range"]]
    table["r2"] = table["r2"].map(lambda v: f"{v:.2f}")
    return table


def fits_reading(exps: pd.DataFrame) -> str:
    steep = exps.loc[exps["alpha"].idxmax()]
    reading = (f"{len(exps)} power-law fits; steepest: {steep['series']} vs {steep['axis']} "
               f"(error ∝ x^-{steep['alpha']:.2f}, 95% CI [{steep['alpha_lo']:.2f}, "
               f"{steep['alpha_hi']:.2f}])")
    flat = exps[exps["alpha_lo"] <= 0]
    if len(flat):
        reading += f"; {len(flat)} fit(s) not distinguishable from flat"
    return reading


@styled
def scaling_laws(df: pd.DataFrame, study="scaling-laws", n_boot: int = 1000) -> FigureResult:
    """Power-law fits of error vs width, depth, sub-network parameters and K (log-log), with 95%
    bootstrap bands; `extra['exponents']` is the table of exponents."""
    fig_id, title = "scaling-laws", "Scaling laws: test error vs size"
    final, notes = prepare(df, study, fig_id, LAST, "hiddenlab's default")
    pts, exps, curves = fit_series(label_columns(final), AXES, n_boot)
    if pts is None:
        raise NoData(f"{fig_id}: no series with >= {MIN_POINTS} distinct widths, depths, sizes "
                     f"or K in {study}")
    used = [a for a in AXES if a.id in set(pts["panel"])]
    fig, axes = new_figure(1, len(used), panel=(3.8, 3.3), extra_h=1.0)
    draw_fits(np.ravel(axes), used, pts, exps, curves,
              SeriesStyles(list(dict.fromkeys(pts["series"]))))
    finish(fig, axes, title, int(pts["n"].max()), legend=False,
           note="lines: power-law fit, bands: 95% bootstrap")
    data = pts.assign(kind="curve")[["panel", "series", "kind", "x", "mean", "sd", "n"]]
    return FigureResult(fig_id, with_accuracy(data.reset_index(drop=True), LAST), fig,
                        fits_reading(exps), table=exponent_table(exps), notes=notes,
                        extra={"exponents": exps.reset_index(drop=True)}, title=title)
