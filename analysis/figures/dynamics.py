"""Selection dynamics and what gets selected (beyond the papers).

`flip_rate`: the per-epoch fraction of connections whose selection changed (`flip_rate`, and
per layer the exporter's JSON column `flip_rate_layers`), mean ± sd over seeds of one
configuration. Top row: one configuration per model and method; bottom row: per layer for the
first of them.

`selected_weights`: histograms of the frozen weight values that the final selection kept vs those
it left out, per layer, from `selection.json` artifacts (counts summed over seeds when the bins
agree), drawn as densities so the two shapes compare although their totals differ.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..core import FigureResult, NoData, fmt_x, method_label, model_label
from ..results import config_key, final_results, one_scale, select_study
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..style import PALETTE, SeriesStyles, finish, new_figure, styled, tex

MAX_SERIES = 6
MAX_LAYERS = 6


def _group_labels(final: pd.DataFrame) -> pd.Series:
    """A short label per trial config: model, then k (edge-popup) or K (slot), and width when not 1."""
    labels = []
    for _, r in final.iterrows():
        parts = [model_label(r["arch"])]
        if r["method"] == "edgepopup":
            parts.append(f"k={fmt_x(r['k_resolved'] * 100)}%")
        elif r["method"] in ("slot-gs", "slot-ps"):
            parts.append(f"K={fmt_x(r['K_resolved'])}")
        w = float(r.get("width_mult", 1.0) or 1.0)
        if w != 1.0:
            parts.append(f"{fmt_x(w)}x wide")
        labels.append(" ".join(parts))
    return pd.Series(labels, index=final.index)


def _defaultness(final: pd.DataFrame) -> pd.Series:
    """How close a config is to the papers' default setting (k = 50%, K = 8, width 1)."""
    score = np.isclose(final.get("width_mult", pd.Series(1.0, index=final.index)).astype(float), 1.0)
    score = score.astype(int)
    score += ((final["method"] == "edgepopup") & np.isclose(final["k_resolved"].astype(float), 0.5))
    score += (final["method"].isin(["slot-gs", "slot-ps"]) & (final["K_resolved"] == 8))
    return score


def pick_configs(fm: pd.DataFrame, max_series: int) -> pd.DataFrame:
    """One configuration per model (the one with most seeds, then closest to the default
    setting), at most `max_series` models in paper order."""
    from ._common import arch_order

    g = fm.assign(dflt=_defaultness(fm)).groupby("group").agg(
        label=("label", "first"), arch=("arch", "first"), seeds=("run_id", "size"),
        dflt=("dflt", "first")).reset_index()
    g = g.sort_values(["seeds", "dflt", "label"], ascending=[False, False, True])
    g = g.drop_duplicates("arch")
    g["rank"] = g["arch"].map(arch_order)
    return g.sort_values("rank").head(max_series)


def layer_flips(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-layer flip rates in long form (run_id, epoch, layer, flip_rate) from the exporter's
    `flip_rate_layers` column: the trainer's dict, written as a JSON string."""
    out = []
    if "flip_rate_layers" not in rows.columns:  # no trial of the frame selects per layer
        return pd.DataFrame(out, columns=["run_id", "epoch", "layer", "flip_rate"])
    for rid, epoch, text in zip(rows["run_id"], rows["epoch"], rows["flip_rate_layers"]):
        if not isinstance(text, str):
            continue
        for layer, v in json.loads(text).items():
            out.append((rid, epoch, layer, float(v)))
    return pd.DataFrame(out, columns=["run_id", "epoch", "layer", "flip_rate"])


def _epoch_rows(df: pd.DataFrame, study) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-epoch rows of finished trials that report a flip rate, and their final rows.
    A trial run in two studies (same run id) counts once."""
    d = one_scale(select_study(df, study))[0]
    final = final_results(d)
    if final.empty:
        raise NoData("flip-rate: no finished trial reports flip_rate")
    final = final.drop_duplicates("run_id")
    rows = d.merge(final[["study", "run_id"]], on=["study", "run_id"])
    rows = rows[rows["flip_rate"].notna()]
    if rows.empty:
        raise NoData("flip-rate: no finished trial reports flip_rate")
    final = final[final["run_id"].isin(set(rows["run_id"]))].copy()
    final["group"] = config_key(final)
    final["label"] = _group_labels(final)
    return rows, final


@styled
def flip_rate(df: pd.DataFrame, study=None, max_series: int = MAX_SERIES) -> FigureResult:
    """Flip rate per epoch (percent of connections; log y when it decays over decades): per method
    one line per model (one configuration each, see `pick_configs`), and per layer for the first
    of them."""
    fig_id, title = "flip-rate", "Selection dynamics: connections changing selection per epoch"
    rows, final = _epoch_rows(df, study)
    layers = layer_flips(rows)
    known = ("edgepopup", "supermask", "slot-gs", "slot-ps")
    methods = [m for m in known if m in set(final["method"])] + \
        sorted(set(final["method"]) - set(known))
    notes, parts, frames = [], [], []
    chosen = {}
    for m in methods:
        fm = final[final["method"] == m]
        chosen[m] = pick_configs(fm, max_series)
        n_cfg, n_arch = fm["group"].nunique(), fm["arch"].nunique()
        if n_cfg > len(chosen[m]):
            notes.append(f"{method_label(m)}: one configuration per model drawn ({len(chosen[m])} "
                         f"of {n_cfg}; most seeds, then closest to k = 50% / K = 8 / width 1)"
                         + (f"; {n_arch - max_series} models not drawn"
                            if n_arch > max_series else ""))
    nrows = 2 if len(layers) else 1
    fig, axes = new_figure(nrows, len(methods), panel=(3.6, 2.9))
    for j, m in enumerate(methods):
        fm = final[final["method"] == m]
        ax = axes[0, j]
        styles = SeriesStyles(list(chosen[m]["label"]))
        for _, g in chosen[m].iterrows():
            ids = fm.loc[fm["group"] == g["group"], "run_id"]
            r = rows[rows["run_id"].isin(set(ids))]
            agg = _per_epoch(r, "flip_rate")
            agg.insert(0, "series", g["label"])
            agg.insert(0, "panel", method_label(m))
            agg["layer"] = ""
            frames.append(agg)
            color, marker = styles[g["label"]]
            _draw(ax, agg, color, marker, g["label"])
        ax.set_title(method_label(m))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if j == 0:
            ax.set_ylabel("selections changed\n(% of connections)")
        ax.legend(fontsize=6.5)
        parts_layer = ""
        if len(layers) and not chosen[m].empty:
            top = chosen[m].iloc[0]
            ids = set(fm.loc[fm["group"] == top["group"], "run_id"])
            per = layers[layers["run_id"].isin(ids)]
            parts_layer = _draw_layers(axes[1, j], per, method_label(m), top["label"], frames,
                                       first=j == 0)
        if not chosen[m].empty:
            top = chosen[m].iloc[0]
            d = [f for f in frames if f["panel"].iloc[0] == method_label(m)
                 and f["series"].iloc[0] == top["label"]][0]
            parts.append(f"{method_label(m)} {top['label']}: {d['mean'].iloc[0]:.2g}% at epoch "
                         f"{fmt_x(d['x'].iloc[0])} → {d['mean'].iloc[-1]:.2g}% at epoch "
                         f"{fmt_x(d['x'].iloc[-1])}{parts_layer}")
    n_max = int(max(f["n"].max() for f in frames))
    finish(fig, axes, title, n_max, legend=False)
    data = pd.concat(frames, ignore_index=True)
    data["kind"] = np.where(data["layer"] == "", "curve", "layer")
    data = data[["panel", "series", "layer", "kind", "x", "mean", "sd", "n"]]
    return FigureResult(fig_id, data, fig, "; ".join(parts), notes=notes, title=title)


def _draw_layers(lax, per: pd.DataFrame, method: str, label: str, frames: list,
                 first: bool) -> str:
    """Per-layer flip rates of one configuration (layers in the order the trainer reports
    them); returns the reading's note on the most active layer at the end."""
    names = list(dict.fromkeys(per["layer"]))
    last = {}
    for name, color in zip(names, _layer_colours(len(names))):
        agg = _per_epoch(per[per["layer"] == name], "flip_rate")
        agg.insert(0, "series", label)
        agg.insert(0, "panel", f"{method} per layer")
        agg["layer"] = name
        frames.append(agg)
        last[name] = agg["mean"].iloc[-1]
        _draw(lax, agg, color, None, name, band=False)
    lax.set_title(f"{method}\n{label}, per layer", fontsize="small")
    lax.set_xlabel("epoch")
    lax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if first:
        lax.set_ylabel("per layer (%)")
    lax.legend(fontsize=6, ncol=2)
    if not last:
        return ""
    hot = max(last, key=last.get)
    return f", most active layer at the end: {hot} ({last[hot]:.2g}%)"


def _per_epoch(r: pd.DataFrame, col: str) -> pd.DataFrame:
    g = r.groupby("epoch")[col]
    out = g.agg(["mean", "std", "count"]).rename(columns={"std": "sd", "count": "n"})
    out[["mean", "sd"]] *= 100
    out = out.reset_index().rename(columns={"epoch": "x"})
    out["n"] = out["n"].astype(int)
    return out


def _draw(ax, agg, color, marker, label, band=True):
    x, m, sd = agg["x"].to_numpy(float), agg["mean"].to_numpy(float), agg["sd"].to_numpy(float)
    ax.plot(x, m, color=color, marker=marker, ms=3, lw=1.4, label=tex(label))
    if band and np.isfinite(sd).sum() >= 2:
        lo = np.where(np.isfinite(sd), np.maximum(m - sd, m * 0.05), m)
        ax.fill_between(x, lo, np.where(np.isfinite(sd), m + sd, m), color=color, alpha=0.15, lw=0)
    pos = m[np.isfinite(m) & (m > 0)]
    if pos.size and pos.max() / pos.min() > 30:  # decays over decades: a log axis shows it
        ax.set_yscale("log")


def _layer_colours(n: int):
    import seaborn as sns

    return sns.color_palette("viridis", max(n, 1))  # ordered, colour-blind-safe: depth order


# --- selected vs unselected weights ------------------------------------------------------------

def rebin(edges, counts, new_edges) -> np.ndarray:
    """Counts of a histogram on `edges` redistributed onto `new_edges`, uniform within each old
    bin (the cumulative count interpolated linearly at the new edges)."""
    edges, counts = np.asarray(edges, float), np.asarray(counts, float)
    cdf = np.concatenate([[0.0], np.cumsum(counts)])
    return np.diff(np.interp(np.asarray(new_edges, float), edges, cdf, left=0.0, right=cdf[-1]))


def _merge_runs(sels: list[dict]) -> tuple[dict, str]:
    """Sum per-layer counts over seeds. The trainer bins each run's own value range, so the edges
    differ between seeds: the counts are re-binned onto the union range first."""
    layers = [k for k in sels[0] if all(k in s for s in sels)]
    out, rebinned = {}, False
    for k in layers:
        hs = [s[k] for s in sels]
        first = np.asarray(hs[0]["bins"], float)
        if all(len(h["bins"]) == len(first) and np.allclose(h["bins"], first) for h in hs):
            edges = first
            sel = sum(np.asarray(h["selected"], float) for h in hs)
            uns = sum(np.asarray(h["unselected"], float) for h in hs)
        else:
            rebinned = True
            lo = min(float(h["bins"][0]) for h in hs)
            hi = max(float(h["bins"][-1]) for h in hs)
            edges = np.linspace(lo, hi, len(first))
            sel = sum(rebin(h["bins"], h["selected"], edges) for h in hs)
            uns = sum(rebin(h["bins"], h["unselected"], edges) for h in hs)
        out[k] = {"bins": edges, "selected": sel, "unselected": uns}
    how = f"{len(sels)} seed{'s' if len(sels) > 1 else ''} summed"
    return out, how + (" (re-binned to common edges)" if rebinned else "")


def _pick_layers(names: list[str], k: int) -> list[str]:
    if len(names) <= k:
        return names
    idx = np.unique(np.round(np.linspace(0, len(names) - 1, k)).astype(int))
    return [names[i] for i in idx]


def _pick_groups(final: pd.DataFrame, max_groups: int) -> pd.DataFrame:
    """Configurations to draw: first the best one of each method (most runs, then closest to the
    default setting), then the next best overall."""
    g = final.assign(dflt=_defaultness(final)).groupby(["group", "label"]).agg(
        runs=("run_id", "size"), dflt=("dflt", "first"), method=("method", "first")).reset_index()
    g = g.sort_values(["runs", "dflt", "label"], ascending=[False, False, True])
    first = g.drop_duplicates("method")
    rest = g[~g["group"].isin(first["group"])]
    return pd.concat([first, rest]).head(max_groups)


@styled
def selected_weights(df: pd.DataFrame, selections: dict, study=None, max_groups: int = 2,
                     max_layers: int = MAX_LAYERS) -> FigureResult:
    """Histograms (as densities) of kept vs left-out frozen weights per layer: one row per
    configuration (at most `max_groups`: one per method first), one panel per layer (at most
    `max_layers`, evenly spaced from first to last)."""
    fig_id, title = "selected-weights", "Selected vs unselected frozen weights (final selection)"
    final = final_results(one_scale(select_study(df, study))[0])
    if final.empty or not selections:
        raise NoData(f"{fig_id}: no selection.json artifacts of finished trials")
    final = final[[(s, r) in selections for s, r in zip(final["study"], final["run_id"])]]
    final = final.drop_duplicates("run_id").copy()
    if final.empty:
        raise NoData(f"{fig_id}: no selection.json artifacts of finished trials")
    final["group"] = config_key(final)
    final["label"] = [f"{method_label(m)}, {lab}" for m, lab in
                      zip(final["method"], _group_labels(final))]
    groups = _pick_groups(final, max_groups)
    merged, notes = [], []
    for _, g in groups.iterrows():
        fr = final[final["group"] == g["group"]]
        sels = [selections[(s, r)] for s, r in zip(fr["study"], fr["run_id"])]
        m, how = _merge_runs(sels)
        merged.append((g["label"], m, how))
        notes.append(f"{g['label']}: {how}")
    if final["group"].nunique() > max_groups:
        notes.append(f"{final['group'].nunique() - max_groups} more configurations not drawn")
    ncols = min(max_layers, max(len(m) for _, m, _ in merged))
    fig = Figure(figsize=(2.3 * ncols, 2.3 * len(merged) + 0.9), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(len(merged), 1))
    rows, ratios, all_axes = [], [], []
    sel_c, uns_c = PALETTE[0], PALETTE[1]
    for i, (label, m, how) in enumerate(merged):
        names = _pick_layers(list(m), max_layers)
        if len(names) < len(m):
            notes.append(f"{label}: {len(names)} of {len(m)} layers drawn (evenly spaced)")
        sub = subfigs[i]
        sub.suptitle(f"{label} ({how})", fontsize="medium", fontweight="bold")
        axes = np.atleast_1d(sub.subplots(1, ncols))
        all_axes.extend(axes)
        for j, ax in enumerate(axes):
            if j >= len(names):
                ax.set_visible(False)
                continue
            h = m[names[j]]
            edges = h["bins"]
            widths = np.diff(edges)
            centers = (edges[:-1] + edges[1:]) / 2
            dens = {}
            for kind in ("selected", "unselected"):
                c = h[kind]
                tot = c.sum()
                dens[kind] = c / (tot * widths) if tot > 0 else np.zeros_like(c)
            ax.stairs(dens["unselected"], edges, fill=True, alpha=0.45, color=uns_c,
                      label="unselected")
            ax.stairs(dens["selected"], edges, fill=True, alpha=0.45, color=sel_c, label="selected")
            ax.stairs(dens["selected"], edges, color=sel_c, lw=1)
            ax.set_title(names[j], fontsize="small")
            ax.tick_params(labelsize=6)
            if j == 0:
                ax.set_ylabel("density", fontsize="small")
            ax.set_xlabel("weight value", fontsize="small")
            mags = {k: (np.abs(centers) * h[k]).sum() / h[k].sum() if h[k].sum() else np.nan
                    for k in ("selected", "unselected")}
            ratios.append(mags["selected"] / mags["unselected"])
            for lo, hi, ds, du, cs, cu in zip(edges[:-1], edges[1:], dens["selected"],
                                              dens["unselected"], h["selected"], h["unselected"]):
                rows.append({"panel": label, "layer": names[j], "bin_lo": lo, "bin_hi": hi,
                             "selected_density": ds, "unselected_density": du,
                             "selected_count": cs, "unselected_count": cu})
    finish(fig, all_axes, title, None, subtitle="each histogram normalised to unit area")
    r = np.asarray(ratios, float)
    r = r[np.isfinite(r)]
    if r.size:
        reading = (f"selected weights are larger in magnitude than unselected ones in "
                   f"{int((r > 1.02).sum())} of {r.size} layers drawn (median ratio of mean |w|, "
                   f"selected / unselected: {np.median(r):.2f})")
    else:
        reading = "no layer has both selected and unselected weights"
    data = pd.DataFrame(rows)
    return FigureResult(fig_id, data, fig, reading, notes=notes, title=title)
