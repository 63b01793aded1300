"""The figure of any study that no paper figure claims: a study a user declared (any name; its
`results.parquet` has the one schema), drawn without knowing what it is about.

Id `study:<name>`. Top row: test accuracy (last epoch) against every numeric config field the study
varies (a field varies when it takes several values within one series: values that differ only
between methods are their recipes, not a sweep), one line per series (the study's own label)
and, where other fields vary too, per value of those; series that do not sweep the field (a
dense baseline has no K) are horizontal reference lines. Second row: the same for validation accuracy
(`best_val_acc`, the best epoch a trial reached), where each trial a scheduler STOPPED early is a
point of its own (it has no test accuracy, and after fewer epochs it would drag down any mean it
joined). Third row: power-law fits of test error against every size-like axis that varies
(`scaling.fit_series`, bootstrap intervals). The table lists the best trials by validation
accuracy with the fields that vary. A study that varies no numeric field gets one point per
series instead of the curves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hiddenlab.config import ConfigError, all_fields, kind_of

from ..core import FigureResult, aggregate, fmt_x, method_label, natural_key
from ..results import LAST, last_rows, config_key, one_scale, select_study
from ..style import SeriesStyles, finish, hide_unused, log2_axis, new_figure, styled
from ._common import ACC_LABEL, category_panel, curve_reading, draw_panel, prepare
from .scaling import AXES, Axis, draw_fits, exponent_table, fit_series, fits_reading

PREFIX = "study:"
VAL = "best_val_acc"
VAL_LABEL = "validation accuracy (%)"
MAX_LINES = 10
TOP_N = 10
# Power laws describe error against size and budget, not against rates or constants: the axes
# fitted when they vary (a measured sub-network size always qualifies).
SCALE_FIELDS = ("width_mult", "depth", "K", "epochs", "subset", "synthetic_size")


def figure_id(study: str) -> str:
    return PREFIX + study


def study_of(fig_id: str) -> str | None:
    return fig_id[len(PREFIX):] if fig_id.startswith(PREFIX) else None


def study_title(study: str) -> str:
    """The study's own title where hiddenlab knows the study, else its name."""
    from hiddenlab.study.registry import get_study

    try:
        return f"Study {study}: {get_study(study).title}"
    except ConfigError:
        return f"Study {study}"


def numeric_fields() -> list[str]:
    """Config fields a study can sweep on a numeric axis (identity fields, not the seed)."""
    return [name for name, f in all_fields().items()
            if kind_of(f) in ("int", "float") and f.metadata.get("identity", True) and
            name != "seed"]


def varying(frame: pd.DataFrame, fields) -> list[str]:
    """The fields of `fields` that take more than one value within some series."""
    out = []
    for name in fields:
        if name in frame.columns:
            counts = frame.groupby("series", dropna=False)[name].nunique()
            if (counts > 1).any():
                out.append(name)
    return out


def _with_series(frame: pd.DataFrame) -> pd.DataFrame:
    """`series`: the study's own label of each trial, the method's name where it has none."""
    f = frame.copy()
    own = f["series"] if "series" in f.columns else pd.Series(None, index=f.index)
    f["series"] = [s if isinstance(s, str) and s else method_label(m)
                   for s, m in zip(own, f["method"])]
    return f


def validation_trials(df: pd.DataFrame) -> pd.DataFrame:
    """Last rows of trials that finished or that a scheduler stopped, with a validation
    accuracy: `acc` = best_val_acc over the epochs they reached."""
    last = last_rows(df)
    ok = last["status"].isin(["TERMINATED", "STOPPED"]) & last[VAL].notna()
    out = last[ok].copy()
    out["acc"] = out[VAL].astype(float)
    out["point"] = config_key(out)
    return _with_series(out).reset_index(drop=True)


# --- one row of panels: accuracy against each field -------------------------------------------

def _fmt(v) -> str:
    return fmt_x(float(v)) if isinstance(v, (int, float, np.integer, np.floating)) else str(v)


def field_points(frame: pd.DataFrame, field: str, fields: list[str], panel: str):
    """(points, baselines, pooled?) of accuracy against `field`. Series that sweep the field are
    lines, one per value of the other fields they sweep (pooled per series when that makes more
    than MAX_LINES lines); series that do not (a dense baseline without K, or at one learning
    rate) are horizontal references, one per value of what they sweep."""
    own = {s: varying(g, fields) for s, g in frame.groupby("series")}
    f = frame.copy()
    label = f["series"].copy()
    for i, (s, r) in enumerate(zip(f["series"], f.itertuples(index=False))):
        rest = [o for o in own[s] if o != field]
        label.iat[i] = s + "".join(f", {o}={_fmt(getattr(r, o))}" for o in rest)
    sweeps = f["series"].map(lambda s: field in own[s]) & f[field].notna()
    lines, base = f[sweeps].copy(), f[~sweeps].copy()
    pooled = label[sweeps].nunique() > MAX_LINES
    lines["series"] = lines["series"] if pooled else label[sweeps]
    lines["x"] = lines[field].astype(float)
    base["series"] = label[~sweeps]
    pts = aggregate(lines.assign(panel=panel), ["panel", "series", "x"])
    base = aggregate(base.assign(panel=panel), ["panel", "series"]) if len(base) else \
        pd.DataFrame(columns=["panel", "series", "mean", "sd", "n"])
    return pts, base, pooled


def _axis_scale(ax, xs: pd.Series) -> None:
    xs = xs[np.isfinite(xs)]
    if len(xs) and (xs > 0).all() and xs.max() / xs.min() >= 8:
        log2_axis(ax, xs)


# --- the figure ------------------------------------------------------------------------------

@styled
def study_figure(df: pd.DataFrame, study: str, n_boot: int = 1000) -> FigureResult:
    """The generic figure of `study` (see the module docstring)."""
    fig_id = figure_id(study)
    final, notes = prepare(df, study, fig_id, LAST, "hiddenlab's default")
    final = _with_series(final)
    val = validation_trials(one_scale(select_study(df, study))[0])
    fields = varying(val if len(val) else final, numeric_fields())
    title = study_title(study)
    curves, notes_fields = _curves(final, val, fields)
    notes += notes_fields
    fit_axes = _fit_axes(final, fields)
    pts_fit, exps, fit_curves = (None,) * 3
    if fit_axes:
        pts_fit, exps, fit_curves = fit_series(final, fit_axes, n_boot,
                                               label=_fit_label(final, fields))
    fig = _draw(title, curves, fields, pts_fit, exps, fit_curves, fit_axes)
    best = best_trials(val, fields)
    extra = {"best-trials": best}
    reading = _reading(curves, fields, best)
    table = _best_table(best, fields)
    if exps is not None:
        extra["exponents"] = exps.reset_index(drop=True)
        extra["fit-points"] = pts_fit.assign(kind="curve")
        reading += "; " + fits_reading(exps)
    notes.append(f"validation accuracy: `{VAL}`, the best epoch each trial reached" +
                 ("; lines average finished trials, a trial stopped early is a × of its own "
                  "(and ranks in the best-trials table) with the epochs it reached"
                  if val["status"].eq("STOPPED").any() else ""))
    result = FigureResult(fig_id, curves, fig, reading, table=table,
                          notes=notes, extra=extra, title=title)
    if exps is not None:
        result.tables = {"power-law fits of test error": exponent_table(exps)}
    return result


def _fit_label(final: pd.DataFrame, fields: list[str]):
    """Fit series named by the study's series and the values of what else varies in it."""
    own = {s: varying(g, fields) for s, g in final.groupby("series")}

    def label(g: pd.DataFrame, axis: Axis) -> str:
        r = g.iloc[0]
        rest = [f for f in own[r["series"]] if f not in axis.varying]
        return r["series"] + "".join(f", {f}={_fmt(r[f])}" for f in rest)
    return label


def _curves(final: pd.DataFrame, val: pd.DataFrame, fields: list[str]):
    """Accuracy points of both rows (`metric` test_acc / best_val_acc), per field or, with no
    varying field, per series. Validation lines are drawn from finished trials like the test
    ones; a trial the scheduler stopped is a point of its own (kind `stopped`), since its
    validation accuracy after fewer epochs would drag down any mean it joined."""
    frames, notes = [], []
    done, stopped = val[val["status"] != "STOPPED"], val[val["status"] == "STOPPED"]
    rows = [(LAST, final, "test")] + ([(VAL, done, "validation")] if len(val) else [])
    for metric, frame, label in rows:
        if not fields:
            frame = frame.assign(panel=label)
            pts = aggregate(frame, ["panel", "series"]).assign(kind="point", x=np.nan)
            frames.append(pts.assign(metric=metric, field=""))
            continue
        for field in fields:
            panel = f"{label} vs {field}"
            pts, base, pooled = field_points(frame, field, fields, panel)
            frames += [pts.assign(kind="curve", metric=metric, field=field),
                       base.assign(kind="baseline", x=np.nan, metric=metric, field=field)]
            if metric == VAL and len(stopped):
                frames.append(_stopped_points(stopped, field, panel))
            if pooled and metric == LAST:
                notes.append(f"vs {field}: more than {MAX_LINES} lines; each series pools the "
                             "values of the other fields (see `configs` in the CSV)")
    data = pd.concat([f for f in frames if len(f)], ignore_index=True, sort=False)
    front = ["panel", "field", "metric", "series", "kind", "x", "mean", "sd", "n"]
    return data[[c for c in front if c in data.columns] +
                [c for c in data.columns if c not in front]], notes


STOPPED_LABEL = "stopped early by the scheduler"


def _stopped_points(stopped: pd.DataFrame, field: str, panel: str) -> pd.DataFrame:
    s = stopped[stopped[field].notna()]
    return pd.DataFrame({"panel": panel, "field": field, "metric": VAL, "series": STOPPED_LABEL,
                         "kind": "stopped", "x": s[field].astype(float).to_numpy(),
                         "mean": s["acc"].to_numpy(float) * 100, "sd": np.nan, "n": 1,
                         "run_id": s["run_id"].to_numpy(), "epoch": s["epoch"].to_numpy()})


def _fit_axes(final: pd.DataFrame, fields: list[str]) -> list[Axis]:
    known = {a.column: a for a in AXES}
    axes = [known.get(f, Axis(f, f, f, (f,), f)) for f in fields if f in SCALE_FIELDS]
    if final["subnet_params"].nunique() > 1:
        axes.append(known["subnet_params"])
    return axes


def _draw(title, curves, fields, pts_fit, exps, fit_curves, fit_axes):
    fitted = [a for a in fit_axes if pts_fit is not None and a.id in set(pts_fit["panel"])]
    ncols = max(len(fields), len(fitted), 1)
    nrows = 2 + bool(fitted)
    fig, axes = new_figure(nrows, ncols, panel=(3.6, 3.0), extra_h=1.0)
    n_max = int(curves.loc[curves["kind"] != "stopped", "n"].max())
    # One colour per label across every panel, fits included.
    labels = list(dict.fromkeys(curves.loc[curves["kind"] != "stopped", "series"]))
    labels += [] if pts_fit is None else list(dict.fromkeys(pts_fit["series"]))
    styles = SeriesStyles(labels)
    bstyles = {s: (styles[s][0], "-.") for s in curves.loc[curves["kind"] == "baseline",
                                                          "series"]}
    for row, (metric, ylabel) in enumerate(((LAST, ACC_LABEL), (VAL, VAL_LABEL))):
        c = curves[curves["metric"] == metric]
        if c.empty:  # no trial reports a validation accuracy
            hide_unused(axes[row], 0)
            continue
        if not fields:
            category_panel(axes[row, 0], c, c.iloc[:0], n_max, ylabel=ylabel)
            axes[row, 0].set_title(c["panel"].iloc[0])
            hide_unused(axes[row], 1)
            continue
        for ax, field in zip(axes[row], fields):
            p = c[c["field"] == field]
            draw_panel(ax, p[p["kind"] == "curve"], p[p["kind"] == "baseline"], styles,
                       bstyles, n_max)
            st = p[p["kind"] == "stopped"]
            if len(st):
                ax.scatter(st["x"], st["mean"], marker="x", color="#555555", s=22, zorder=3,
                           label=STOPPED_LABEL)
            _axis_scale(ax, p.loc[p["kind"] == "curve", "x"])
            ax.set_title(p["panel"].iloc[0])
            ax.set_xlabel(field)
            ax.set_ylabel(ylabel)
        hide_unused(axes[row], len(fields))
    if fitted:
        draw_fits(axes[2], fitted, pts_fit, exps, fit_curves, styles)
        hide_unused(axes[2], len(fitted))
    note = "bottom: power-law fits of test error, 95% bootstrap bands" if fitted else ""
    finish(fig, axes[:2], title, n_max, note=note)
    return fig


# --- the best trials -------------------------------------------------------------------------

def best_trials(val: pd.DataFrame, fields: list[str], n: int = TOP_N) -> pd.DataFrame:
    """The `n` trials with the highest validation accuracy: what they vary, how far they ran,
    their validation and test accuracies (percent; no test accuracy for a stopped trial)."""
    top = val.sort_values([VAL, "run_id"], ascending=[False, True]).head(n)
    cols = ["run_id", "status", "series", "method", *fields, "seed", "epoch", "epochs",
            "best_val_epoch", VAL, "test_acc", "best_val_test_acc"]
    out = top[[c for c in cols if c in top.columns]].copy()
    for c in (VAL, "test_acc", "best_val_test_acc"):
        if c in out.columns:
            out[c] = out[c].astype(float) * 100
    out.insert(0, "rank", range(1, len(out) + 1))
    return out.reset_index(drop=True)


def _best_table(best: pd.DataFrame, fields: list[str]) -> pd.DataFrame:
    t = best.rename(columns={"epoch": "epochs run", VAL: "validation (%)",
                             "test_acc": "test, last epoch (%)",
                             "best_val_test_acc": "test, best validation epoch (%)"})
    for c in ("validation (%)", "test, last epoch (%)", "test, best validation epoch (%)"):
        if c in t.columns:
            t[c] = [f"{v:.2f}" if np.isfinite(v) else "–" for v in t[c].astype(float)]
    for f in fields:
        t[f] = t[f].map(lambda v: _fmt(v) if pd.notna(v) else "–")
    return t


def _reading(curves: pd.DataFrame, fields: list[str], best: pd.DataFrame) -> str:
    parts = []
    test = curves[curves["metric"] == LAST]
    for field in fields:
        parts.append(curve_reading(test[test["field"] == field], field))
    if not fields:
        top = test.loc[test["mean"].idxmax()]
        parts.append(f"best series by test accuracy: {top['series']} {top['mean']:.1f}%")
    if len(best):
        b = best.iloc[0]
        what = ", ".join(f"{f}={_fmt(b[f])}" for f in fields if pd.notna(b[f]))
        parts.append(f"best trial by validation: {b['series']}" + (f" ({what})" if what else "") +
                     f", validation {b[VAL]:.1f}%")
    return "; ".join(p for p in parts if p)


def generic_studies(df: pd.DataFrame, claimed: set[str]) -> list[str]:
    """Studies of the frame that no paper figure claims, in natural order."""
    if df.empty or "study" not in df.columns:
        return []
    return sorted(set(df["study"].dropna()) - claimed, key=natural_key)
