"""edge-popup (Ramanujan et al. 2020): Table 1, Figs 3-10 and Table 2, each a pure function of a
results frame (Table 1 of nothing: it is computed from the models).

x axes follow the paper: % of weights kept (k x 100; for Zhou the realised fraction by Zhou's own
definition, `kept_fraction_paper`), width multiplier, sub-network parameters. Learned dense
baselines are horizontal where the paper draws them so. Accuracies are the last epoch's
(`test_acc`): edge-popup selects no epoch on validation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..archs import analytic_params, describe, layers_of, model_params
from ..core import (CODE_SUFFIX, FigureResult, NoData, aggregate, fmt_count, fmt_x, fmt_pct,
                    init_label, method_label, model_label)
from ..results import LAST
from ..style import SeriesStyles, finish, new_figure, styled, tex
from ..trends import compare, phrase, tolerance
from ._common import (ACC_LABEL, KEPT_LABEL, TOP1_LABEL, baselines, curve_figure, curve_reading,
                      dense_label, init_series, label_columns, pct_axis, points, prepare,
                      with_accuracy)

WHY = ("edge-popup selects no epoch on validation (the reference code's best-over-epochs "
       "number selects on the test set: docs/published.md)")


def _prepare(df, study, fig_id):
    final, notes = prepare(df, study, fig_id, LAST, WHY)
    return label_columns(final), notes


def _kept_pct(f: pd.DataFrame) -> pd.Series:
    return f["k_resolved"].astype(float) * 100


# --- Table 1 ------------------------------------------------------------------------------------

def table1(df: pd.DataFrame | None = None,
           models=("conv2", "conv4", "conv6", "conv8")) -> FigureResult:
    """Architectures Conv2/4/6/8: layers and parameter counts (computed, no trials)."""
    return _arch_table("ep-table1", "Table 1 · Conv2/4/6/8 architectures (CIFAR-10)",
                       [(m, "CIFAR-10") for m in models])


def _arch_table(fig_id: str, title: str, models) -> FigureResult:
    rows, notes = [], []
    for name, data in models:
        layers = layers_of(name)
        a = analytic_params(name)
        total, source = model_params(name)
        conv_l, fc_l = describe(layers) if layers else ("?", "?")
        rows.append({"model": model_label(name), "name": name, "dataset": data,
                     "conv layers": conv_l, "fc layers": fc_l,
                     "conv params": a["conv"] if a else np.nan, "fc params": a["fc"] if a else np.nan,
                     "total params": total if total is not None else np.nan, "source": source})
        if a and total is not None and total != a["total"]:
            notes.append(f"{name}: count_params gives {total:,}, the analytic count "
                         f"{a['total']:,} (conv+fc without biases); one of them is wrong")
    data = pd.DataFrame(rows)
    table = data.drop(columns=["name"]).copy()
    for c in ("conv params", "fc params", "total params"):
        table[c] = [f"{int(v):,}" if np.isfinite(v) else "–" for v in data[c].astype(float)]
    tot = data["total params"].astype(float)
    small, big = data.loc[tot.idxmin()], data.loc[tot.idxmax()]
    fc_share = data["fc params"].astype(float) / \
        (data["conv params"] + data["fc params"]).astype(float)
    reading = (f"from {fmt_count(small['total params'])} ({small['model']}) to "
               f"{fmt_count(big['total params'])} ({big['model']}) connections; FC share of the "
               "weights: " + ", ".join(f"{m} {s:.0%}" for m, s in zip(data["model"], fc_share)))
    return FigureResult(fig_id, data, None, reading, table=table, notes=notes, title=title)


# --- Figs 3, 7, 10: accuracy vs % of weights, one line per init --------------------------------

@styled
def _inits_vs_k(df, study, fig_id, title, ylabel=ACC_LABEL) -> FigureResult:
    f, notes = _prepare(df, study, fig_id)
    lines = f[f["method"] == "edgepopup"].copy()
    if lines.empty:
        raise NoData(f"{fig_id}: no finished edge-popup trials in {study}")
    lines["series"] = init_series(lines)
    lines["x"] = _kept_pct(lines)
    base = f[f["method"] == "dense"].copy()
    base["series"] = dense_label(base)
    pts = points(lines)
    b = baselines(base, set(pts["panel"]))
    fig, data = curve_figure(fig_id, title, pts, b, xlabel=KEPT_LABEL, ylabel=ylabel, xfmt=pct_axis)
    result = FigureResult(fig_id, with_accuracy(data, LAST), fig, curve_reading(data, "k", "%"),
                          notes=notes, title=title)
    gap = scaled_code_gap(data)
    if not gap.empty:
        result.extra["scaled-code"] = gap
        result.table = _gap_table(gap)
        result.reading += "; " + _gap_reading(gap)
        result.notes.append("scaled inits in both forms: `scaled_*` multiplies the std by "
                            "1/sqrt(k) (right for every k), `scaled_*_code` (dashed, `(code)`) "
                            "by 1/sqrt(1-k) as the edge-popup code does (equal at k = 50%); the "
                            "table gives their difference per k")
    return result


def scaled_code_gap(data: pd.DataFrame) -> pd.DataFrame:
    """Per panel, scaled init and k: the correct scaled form (std x 1/sqrt(k)) against the
    reference code's (x 1/sqrt(1-k)), and their difference in percentage points; `std_ratio` is
    the code's std over the correct one's, sqrt(k / (1 - k))."""
    c = data[data["kind"] == "curve"]
    rows = []
    for (panel, series), g in c.groupby(["panel", "series"], sort=False):
        code = c[(c["panel"] == panel) & (c["series"] == series + CODE_SUFFIX)]
        if not series.startswith("scaled ") or code.empty:
            continue
        both = g.merge(code, on="x", suffixes=("", "_code"))
        for _, r in both.iterrows():
            k = r["x"] / 100
            rows.append({"panel": panel, "init": series, "x": r["x"], "mean": r["mean"],
                         "sd": r["sd"], "n": r["n"], "mean_code": r["mean_code"],
                         "sd_code": r["sd_code"], "n_code": r["n_code"],
                         "difference": r["mean"] - r["mean_code"],
                         "std_ratio": np.sqrt(k / (1 - k)) if 0 < k < 1 else np.nan})
    return pd.DataFrame(rows)


def _gap_table(gap: pd.DataFrame) -> pd.DataFrame:
    def cell(m, sd, n):
        return f"{m:.1f}" + (f" ± {sd:.1f}" if np.isfinite(sd) else "") + f" (n={int(n)})"

    return pd.DataFrame({
        "panel": gap["panel"], "init": gap["init"], "k (%)": gap["x"].map(fmt_x),
        "scaled, 1/√k (%)": [cell(m, s, n) for m, s, n in zip(gap["mean"], gap["sd"], gap["n"])],
        "scaled (code), 1/√(1−k) (%)": [cell(m, s, n) for m, s, n in
                                         zip(gap["mean_code"], gap["sd_code"], gap["n_code"])],
        "difference (pp)": [f"{d:+.2f}" for d in gap["difference"]],
        "std code / correct": [fmt_pct(v, 2) for v in gap["std_ratio"]]})


def _gap_reading(gap: pd.DataFrame) -> str:
    big = gap.loc[gap["difference"].abs().idxmax()]
    return (f"scaled 1/√k minus the code's 1/√(1−k): mean |difference| "
            f"{gap['difference'].abs().mean():.1f} pp, largest {big['difference']:+.1f} pp "
            f"({big['panel']} {big['init']}, k = {fmt_x(big['x'])}%)")


def fig3(df: pd.DataFrame, study="ep-fig3") -> FigureResult:
    """Fig 3 "Going deeper": accuracy vs % of weights, panels Conv2-8, N_k and U_k, learned
    dense (Adam, SGD) as horizontal lines."""
    return _inits_vs_k(df, study, "ep-fig3", "Fig 3 · Going deeper: edge-popup on CIFAR-10")


def fig7(df: pd.DataFrame, study="ep-fig7") -> FigureResult:
    """Fig 7: the weight distribution (N_k, U_k, scaled in both forms, Xavier normal, Kaiming
    uniform); the table compares the two scaled forms per k."""
    return _inits_vs_k(df, study, "ep-fig7", "Fig 7 · Weight distribution (CIFAR-10)")


def fig10(df: pd.DataFrame, study="ep-fig10") -> FigureResult:
    """Fig 10: ImageNet ResNet-50, N_k vs scaled N_k and U_k vs scaled U_k (both scaled forms);
    the table compares the two scaled forms per k."""
    return _inits_vs_k(df, study, "ep-fig10", "Fig 10 · Scaled init on ImageNet (ResNet-50)",
                       ylabel=TOP1_LABEL)


# --- Fig 4: going wider ----------------------------------------------------------------------

@styled
def fig4(df: pd.DataFrame, study="ep-fig4") -> FigureResult:
    """Fig 4 "Going wider": accuracy vs width multiplier, edge-popup (k = 50%) N_k and U_k vs
    learned dense at the same width."""
    fig_id, title = "ep-fig4", "Fig 4 · Going wider: edge-popup at k = 50% vs learned"
    f, notes = _prepare(df, study, fig_id)
    f = f[f["method"].isin(["edgepopup", "dense"])].copy()
    if not (f["method"] == "edgepopup").any():
        raise NoData(f"{fig_id}: no finished edge-popup trials in {study}")
    ep = f["method"] == "edgepopup"
    f.loc[ep, "series"] = init_series(f[ep], with_method=True)
    many_k = f.loc[ep, "k_resolved"].nunique() > 1
    if many_k:  # the paper's figure is k = 50% only; other k values get their own series
        f.loc[ep, "series"] = f.loc[ep, "series"] + [f" k={fmt_x(k * 100)}%"
                                                     for k in f.loc[ep, "k_resolved"]]
    f.loc[~ep, "series"] = dense_label(f[~ep])
    f["x"] = f["width_mult"].astype(float)
    pts = points(f)
    fig, data = curve_figure(fig_id, title, pts, None, xlabel="width multiplier")
    return FigureResult(fig_id, with_accuracy(data, LAST), fig, _wide_reading(data), notes=notes,
                        title=title)


def _wide_reading(data: pd.DataFrame) -> str:
    parts, tol = [], tolerance(data["sd"])
    for panel, p in data.groupby("panel", sort=False):
        ep = p[p["series"].str.startswith("edge-popup")]
        dense = p[p["series"].str.startswith("learned")]
        if ep.empty:
            continue
        best = ep.groupby("series")["mean"].mean().idxmax()
        s = ep[ep["series"] == best]
        text = f"{panel}, {best}: {phrase(s['x'], s['mean'], 'width', tol, xunit='x')}"
        if not dense.empty:
            wmax = s["x"].max()
            d = dense[np.isclose(dense["x"], wmax)]
            if not d.empty:
                d = d.loc[d["mean"].idxmax()]
                e = s.loc[s["x"].idxmax(), "mean"]
                text += (f"; at width {fmt_x(wmax)}x it is {compare(e, d['mean'], tol)} "
                         f"{d['series']} ({e:.1f} vs {d['mean']:.1f}%)")
        parts.append(text)
    return "; ".join(parts)


# --- Fig 5: fixed sub-network size ----------------------------------------------------------

def size_classes(sizes: pd.Series, rel_tol: float = 0.05) -> pd.Series:
    """Cluster sub-network sizes: the study sets k per width so k x params(width) is constant, up
    to rounding of layer widths; sizes within `rel_tol` of the previous one share a class."""
    order = sizes.sort_values()
    cls, current, prev = {}, -1, None
    for idx, v in order.items():
        if prev is None or v > prev * (1 + rel_tol):
            current += 1
        cls[idx] = current
        prev = v
    return pd.Series(cls).reindex(sizes.index)


@styled
def fig5(df: pd.DataFrame, study="ep-fig5") -> FigureResult:
    """Fig 5: Conv4 with a fixed number of kept weights, varying width: one curve per constant
    size c1 < c2 < c3 (the sizes of k = 30, 50, 70% at width 1)."""
    fig_id, title = "ep-fig5", "Fig 5 · Fixed sub-network size, varying width"
    f, notes = _prepare(df, study, fig_id)
    lines = f[f["method"] == "edgepopup"].copy()
    if lines.empty:
        raise NoData(f"{fig_id}: no finished edge-popup trials in {study}")
    if "subnet_params" in lines.columns and lines["subnet_params"].notna().all():
        size = lines["subnet_params"].astype(float)
    else:
        size = lines["k_resolved"].astype(float) * lines["params"].astype(float)
    lines["size"] = size
    lines["cls"] = lines.groupby("panel", group_keys=False)["size"].apply(size_classes)
    labels = {}
    for (panel, c), g in lines.groupby(["panel", "cls"]):
        at1 = g[np.isclose(g["width_mult"].astype(float), 1.0)]
        k1 = f" (k = {fmt_x(at1['k_resolved'].iloc[0] * 100)}% at width 1)" if len(at1) else ""
        labels[(panel, c)] = f"c{int(c) + 1} = {fmt_count(g['size'].median())}{k1}"
    lines["series"] = [labels[(p, c)] for p, c in zip(lines["panel"], lines["cls"])]
    multi_init = lines["init_resolved"].nunique() > 1
    if multi_init:
        lines["series"] = lines["series"] + ", " + init_series(lines)
    lines["x"] = lines["width_mult"].astype(float)
    dense = f[f["method"] == "dense"].copy()
    dense["series"] = dense_label(dense)
    dense["x"] = dense["width_mult"].astype(float)
    pts = points(pd.concat([lines, dense], sort=False), keep=("method", "init_resolved", "k_resolved"))
    sizes = lines.groupby("series")["size"].median()
    pts["size"] = pts["series"].map(sizes)
    fig, data = curve_figure(fig_id, title, pts, None, xlabel="width multiplier",
                             note="k set per width so that k x params stays constant")
    tol = tolerance(data["sd"])
    parts = []
    for s, g in data[data["series"].str.startswith("c")].groupby("series", sort=True):
        parts.append(f"{s.split(' (')[0]}: {phrase(g['x'], g['mean'], 'width', tol, xunit='x')}")
    return FigureResult(fig_id, with_accuracy(data, LAST), fig, "; ".join(parts), notes=notes,
                        title=title)


# --- Figs 6, 9: edge-popup vs Zhou --------------------------------------------------------

@styled
def _methods_vs_kept(df, study, fig_id, title, ylabel=ACC_LABEL) -> FigureResult:
    f, notes = _prepare(df, study, fig_id)
    lines = f[f["method"].isin(["edgepopup", "supermask"])].copy()
    if lines.empty:
        raise NoData(f"{fig_id}: no finished edge-popup or supermask trials in {study}")
    lines["series"] = init_series(lines, with_method=True)
    # Zhou's kept fraction is not set but learned: its x is the realised fraction (mean ± sd over
    # seeds of one config) by Zhou's definition; edge-popup's k is exact.
    zhou = lines["method"] == "supermask"
    realised, note = zhou_kept(lines[zhou])
    lines["xm"] = lines["k_resolved"].astype(float) * 100
    lines.loc[zhou, "xm"] = realised * 100
    if note:
        notes.append(note)
    pts = points(lines, measured_x="xm")
    pts.loc[pts["method"] != "supermask", "x_sd"] = np.nan
    base = f[f["method"] == "dense"].copy()
    base["series"] = dense_label(base)
    b = baselines(base, set(pts["panel"]))
    fig, data = curve_figure(fig_id, title, pts, b,
                             xlabel=KEPT_LABEL + " (Zhou: realised, mean over layers)",
                             ylabel=ylabel, linestyle_by="method", xfmt=pct_axis)
    return FigureResult(fig_id, with_accuracy(data, LAST), fig, _vs_zhou_reading(data),
                        notes=notes, title=title)


def zhou_kept(zhou: pd.DataFrame) -> tuple[pd.Series, str]:
    """Zhou's realised fraction kept per trial by Zhou's definition (`kept_fraction_paper`: the
    unweighted mean over layers of the fraction a sampled mask keeps), and the note saying so;
    trials without it fall back to `kept_fraction` (connection-weighted, evaluation mask
    p > 0.5), counted in the note."""
    if zhou.empty:
        return pd.Series(dtype=float), ""
    weighted = zhou["kept_fraction"].astype(float)
    paper = zhou["kept_fraction_paper"].astype(float) if "kept_fraction_paper" in zhou.columns \
        else pd.Series(np.nan, index=zhou.index)
    missing = int(paper.isna().sum())
    note = ("Zhou's x: `kept_fraction_paper`, Zhou's definition (unweighted mean over layers of "
            "the fraction kept by a sampled mask)")
    if missing:
        note += (f"; {missing} of {len(zhou)} Zhou trials lack it and use `kept_fraction` "
                 "instead (connection-weighted, evaluation mask p > 0.5)")
    return paper.where(paper.notna(), weighted), note


def _vs_zhou_reading(data: pd.DataFrame) -> str:
    c = data[data["kind"] == "curve"]
    parts = []
    for panel, p in c.groupby("panel", sort=False):
        best = {m: p[p["method"] == m]["mean"].max() for m in ("edgepopup", "supermask")}
        txt = [f"best {method_label(m)} {v:.1f}%" for m, v in best.items() if np.isfinite(v)]
        if all(np.isfinite(v) for v in best.values()):
            txt.append(f"gap {best['edgepopup'] - best['supermask']:+.1f} pp")
        parts.append(f"{panel}: " + ", ".join(txt))
    return "; ".join(parts)


def fig6(df: pd.DataFrame, study="ep-fig6") -> FigureResult:
    """Fig 6: edge-popup vs Zhou et al. with N_k, U_k, N_x, U_x (Zhou at its realised %)."""
    return _methods_vs_kept(df, study, "ep-fig6", "Fig 6 · edge-popup vs Zhou et al. (CIFAR-10)")


def fig9(df: pd.DataFrame, study="ep-fig9") -> FigureResult:
    """Fig 9: ImageNet ResNet-50, % of weights, edge-popup vs Zhou."""
    return _methods_vs_kept(df, study, "ep-fig9", "Fig 9 · ImageNet ResNet-50: edge-popup vs Zhou",
                            ylabel=TOP1_LABEL)


# --- Fig 8 and Table 2: ImageNet size vs accuracy --------------------------------------------

def _fig8_points(df, study, fig_id):
    f, notes = _prepare(df, study, fig_id)
    f = f[f["method"].isin(["edgepopup", "dense"])].copy()
    if f.empty:
        raise NoData(f"{fig_id}: no finished edge-popup or dense trials in {study}")
    ep = f["method"] == "edgepopup"
    f["series"] = ""
    f.loc[ep, "series"] = [f"edge-popup {init_label(i)} (k = {fmt_x(k * 100)}%)"
                           for i, k in zip(f.loc[ep, "init_resolved"], f.loc[ep, "k_resolved"])]
    f.loc[~ep, "series"] = dense_label(f[~ep])
    size = f["subnet_params"] if "subnet_params" in f.columns else f["params"] * f["k_resolved"]
    f["params_m"] = size.astype(float) / 1e6
    pts = aggregate(f, ["series", "panel_rank", "panel"], x="params_m", scale=1.0)
    acc = aggregate(f, ["series", "panel_rank", "panel"])
    pts[["mean", "sd"]] = acc[["mean", "sd"]]
    first = f.groupby(["series", "panel"])[["method", "init_resolved", "k_resolved", "arch"]].first()
    pts = pts.merge(first.reset_index(), on=["series", "panel"])
    pts = pts.rename(columns={"panel": "model"}).drop(columns="panel_rank")
    pts.insert(0, "panel", "ImageNet")
    return with_accuracy(pts, LAST), notes


@styled
def fig8(df: pd.DataFrame, study="ep-fig8") -> FigureResult:
    """Fig 8: ImageNet top-1 vs sub-network parameters, edge-popup (k = 30%) in ResNet-50/101 and
    WRN-50-2 vs learned dense ResNet-18/34/50/101; points labelled by model."""
    fig_id, title = "ep-fig8", "Fig 8 · ImageNet: accuracy vs sub-network size"
    pts, notes = _fig8_points(df, study, fig_id)
    fig, axes = new_figure(1, 1, panel=(6.0, 4.2))
    ax = axes[0, 0]
    n_max = int(pts["n"].max())
    styles = SeriesStyles(list(dict.fromkeys(pts["series"])))
    for s, g in pts.groupby("series", sort=True):
        g = g.sort_values("x")
        color, marker = styles[s]
        ls = "--" if g["method"].iloc[0] == "dense" else "-"
        ax.errorbar(g["x"], g["mean"], yerr=g["sd"].fillna(0), color=color, marker=marker,
                    ls=ls, capsize=3, lw=1.5, ms=6, label=tex(s))
        for _, r in g.iterrows():
            n = f", n={int(r['n'])}" if r["n"] < n_max else ""
            ax.annotate(f"{r['model']}{n}", (r["x"], r["mean"]), textcoords="offset points",
                        xytext=(5, -11), fontsize=7, color=color)
    ax.set_xlabel("parameters of the (sub-)network (millions)")
    ax.set_ylabel(TOP1_LABEL)
    finish(fig, axes, title, n_max)
    data = pts.sort_values(["method", "series", "x"]).reset_index(drop=True)
    data["kind"] = "curve"
    return FigureResult(fig_id, data, fig, _fig8_reading(data), notes=notes, title=title)


def _fig8_reading(data: pd.DataFrame) -> str:
    ep, dense = data[data["method"] == "edgepopup"], data[data["method"] == "dense"]
    if ep.empty:
        return "no edge-popup points"
    top = ep.loc[ep["mean"].idxmax()]
    text = (f"best hidden sub-network: {top['model']} {init_label(top['init_resolved'])} "
            f"{top['mean']:.1f}% with {top['x']:.1f}M parameters")
    if not dense.empty:
        beaten = dense[(dense["mean"] <= top["mean"])]
        if not beaten.empty:
            d = beaten.loc[beaten["mean"].idxmax()]
            rel = "fewer" if top["x"] < d["x"] else "more"
            text += (f"; it matches or beats learned {d['model']} ({d['mean']:.1f}%, "
                     f"{d['x']:.1f}M) with {rel} parameters")
        else:
            text += f"; below every learned network (best learned {dense['mean'].max():.1f}%)"
    return text


def table2(df: pd.DataFrame, study="ep-fig8") -> FigureResult:
    """Table 2: ImageNet results (Fig 8's numbers) beside the published top-1."""
    from ..published import lookup_ep_imagenet

    fig_id, title = "ep-table2", "Table 2 · ImageNet: edge-popup sub-networks and learned networks"
    pts, notes = _fig8_points(df, study, fig_id)
    rows = []
    for _, r in pts.sort_values(["method", "x"], ascending=[False, True]).iterrows():
        pub = lookup_ep_imagenet(r["arch"], r["init_resolved"]) if r["method"] == "edgepopup" else None
        rows.append({"model": r["model"], "method": method_label(r["method"]),
                     "init": init_label(r["init_resolved"]),
                     "k (%)": fmt_x(r["k_resolved"] * 100), "params (M)": r["x"],
                     "top-1 mean (%)": r["mean"], "top-1 sd": r["sd"], "n": int(r["n"]),
                     "published top-1 (%)": pub if pub is not None else np.nan,
                     "difference (pp)": (r["mean"] - pub) if pub is not None else np.nan})
    data = with_accuracy(pd.DataFrame(rows), LAST)
    table = data.drop(columns="accuracy")
    table["params (M)"] = table["params (M)"].map(lambda v: f"{v:.1f}")
    table["top-1 (%)"] = [f"{m:.1f} ± {s:.1f}" if np.isfinite(s) else f"{m:.1f}"
                          for m, s in zip(data["top-1 mean (%)"], data["top-1 sd"])]
    table["published top-1 (%)"] = table["published top-1 (%)"].map(
        lambda v: "–" if not np.isfinite(v) else f"{v:g}")
    table["difference (pp)"] = table["difference (pp)"].map(
        lambda v: "–" if not np.isfinite(v) else f"{v:+.1f}")
    table = table[["model", "method", "init", "k (%)", "params (M)", "top-1 (%)", "n",
                   "published top-1 (%)", "difference (pp)"]]
    diffs = data["difference (pp)"].dropna()
    reading = _fig8_reading(pts.assign(kind="curve"))
    if len(diffs):
        reading += (f"; mean difference to the published numbers {diffs.mean():+.1f} pp over "
                    f"{len(diffs)} rows")
    return FigureResult(fig_id, data, None, reading, table=table, notes=notes, title=title)
