"""How every figure looks: seaborn's whitegrid theme in a local rc context (importing hiddenlab
must not restyle a user's notebook), the colour-blind-safe palette with a fixed colour and marker
per series name (N_k is the same colour in every figure), mean ± 1 sd bands, horizontal baselines
and a log2 K axis.
"""

from __future__ import annotations

import functools
import re
import textwrap

import matplotlib as mpl
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from .core import CODE_SUFFIX

PALETTE = sns.color_palette("colorblind", 10)
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h"]
BASELINE_STYLES = [("#222222", "--"), ("#777777", ":"), ("#444444", "-."), ("#999999", "--")]

# Series that recur across figures and their palette index (colour) - chosen so that series
# drawn together never share a colour and the pale pink/yellow stay unused; grey (7) is for
# learned baselines.
KNOWN = {"N_k": 0, "U_k": 1, "N_x": 2, "U_x": 3, "scaled N_k": 4, "scaled U_k": 5,
         "kaiming uniform": 9, "unsigned constant": 6, "Glorot U (code)": 0, "Glorot (paper)": 1,
         "edge-popup": 0, "Zhou et al.": 1, "Slot Machines (GS)": 2, "Slot Machines (PS)": 3,
         "finetuned": 4, "finetuned (from GS)": 4}


def rc() -> dict:
    r = {}
    r.update(sns.axes_style("whitegrid"))
    r.update(sns.plotting_context("paper", font_scale=1.15))
    r.update({"axes.titleweight": "bold", "figure.dpi": 100, "savefig.dpi": 150,
              "legend.frameon": False, "axes.spines.top": False, "axes.spines.right": False,
              "pdf.fonttype": 42, "svg.fonttype": "none", "mathtext.default": "it"})
    return r


def styled(func):
    """Run a figure function inside the hiddenlab rc context."""
    @functools.wraps(func)
    def wrapper(*args, **kw):
        with mpl.rc_context(rc()):
            return func(*args, **kw)
    return wrapper


def new_figure(nrows: int = 1, ncols: int = 1, panel=(3.4, 2.9), sharey=False, sharex=False,
               extra_h: float = 0.6):
    """A Figure (not pyplot: nothing global, no figure leaks in long CLI runs) with a grid of
    axes, always returned as a 2-d array."""
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows + extra_h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey, sharex=sharex)
    return fig, axes


def tex(label: str) -> str:
    """Legend text: N_k -> $N_k$ (mathtext), the papers' notation."""
    return re.sub(r"\b([NU])_([kx])\b", r"$\1_\2$", str(label))


# Palette order for series without a fixed colour: grey (7) is kept for learned baselines and
# the pale yellow (8) comes last because it reads badly on white.
_FREE_ORDER = [0, 1, 2, 3, 4, 5, 9, 6, 8]
_LEARNED = [("#222222", ">"), ("#777777", "<"), ("#aaaaaa", "d")]


def canonical(label: str) -> str:
    """The part of a series label that names its colour: 'edge-popup N_k (k = 30%)' -> 'N_k';
    a reference-code variant shares its series' colour ('scaled N_k (code)' -> 'scaled N_k')."""
    base = re.sub(r"^(edge-popup|Zhou et al\.)\s+", "", str(label))
    base = base.removesuffix(CODE_SUFFIX)
    return re.sub(r"\s*\(k = [^)]*\)$", "", base)


class SeriesStyles:
    """Colour and marker per series label: stable across figures for the recurring series (N_k is
    always blue), learned networks in greys, anything else in the free colour-blind colours."""

    def __init__(self, labels):
        labels = list(dict.fromkeys(labels))
        self.map = {}
        learned = sorted(lab for lab in labels if str(lab).startswith("learned"))
        used = set()
        for lab in labels:
            if lab in learned:
                self.map[lab] = _LEARNED[learned.index(lab) % len(_LEARNED)]
            elif canonical(lab) in KNOWN:
                i = KNOWN[canonical(lab)]
                used.add(i)
                self.map[lab] = (PALETTE[i], MARKERS[list(KNOWN).index(canonical(lab)) % len(MARKERS)])
        free = [i for i in _FREE_ORDER if i not in used] or _FREE_ORDER
        others = [lab for lab in labels if lab not in self.map]
        for j, lab in enumerate(others):
            i = free[j % len(free)]
            self.map[lab] = (PALETTE[i], MARKERS[(j + len(used)) % len(MARKERS)])

    def __getitem__(self, label):
        return self.map[label]


def draw_series(ax, pts, styles: SeriesStyles, *, series="series", linestyle_by=None,
                annotate_below: int | None = None, label_prefix=""):
    """Mean line with markers and a ±1 sd band per series; horizontal error bars when x is
    measured (`x_sd`); `n=...` beside points with fewer seeds than `annotate_below`. A
    reference-code variant (label ending ` (code)`) is dashed in its series' colour."""
    linestyles = ["-", "--", ":", "-."]
    ls_values = sorted(pts[linestyle_by].dropna().unique()) if linestyle_by else []
    for name, g in pts.groupby(series, sort=False):
        g = g.sort_values("x")
        color, marker = styles[name]
        ls = linestyles[ls_values.index(g[linestyle_by].iloc[0]) % 4] if linestyle_by else "-"
        if str(name).endswith(CODE_SUFFIX):
            ls = "--"
        if linestyle_by:
            marker = MARKERS[ls_values.index(g[linestyle_by].iloc[0]) % len(MARKERS)]
        x, m, sd = g["x"].to_numpy(float), g["mean"].to_numpy(float), g["sd"].to_numpy(float)
        ax.plot(x, m, ls=ls, marker=marker, color=color, lw=1.6, ms=5, label=tex(label_prefix + name))
        band = np.isfinite(sd)
        if band.sum() >= 2:
            ax.fill_between(x, np.where(band, m - sd, m), np.where(band, m + sd, m),
                            color=color, alpha=0.18, lw=0)
        elif band.any():
            ax.errorbar(x[band], m[band], yerr=sd[band], fmt="none", color=color, capsize=3)
        if "x_sd" in g.columns and g["x_sd"].notna().any():
            ax.errorbar(x, m, xerr=g["x_sd"].fillna(0).to_numpy(float), fmt="none",
                        color=color, alpha=0.6, capsize=2, lw=1)
        if annotate_below:
            for xi, mi, ni in zip(x, m, g["n"]):
                if ni < annotate_below:
                    ax.annotate(f"n={ni}", (xi, mi), textcoords="offset points", xytext=(3, -10),
                                fontsize=7, color=color)


def baseline_styles(names) -> dict:
    """(colour, linestyle) per baseline name, the same in every panel of a figure: learned
    networks in black/greys with dashes, anything else (finetuned) in its series colour."""
    names = sorted(dict.fromkeys(names))
    learned = [n for n in names if str(n).startswith("learned")]
    out = {n: BASELINE_STYLES[i % len(BASELINE_STYLES)] for i, n in enumerate(learned)}
    others = [n for n in names if n not in out]
    colours = SeriesStyles(others)
    for n in others:
        out[n] = (colours[n][0], "-.")
    return out


def draw_baselines(ax, base, *, series="series", annotate_below: int | None = None,
                   styles: dict | None = None):
    """Learned baselines as horizontal lines with a ±1 sd band (the papers' dashed lines)."""
    styles = styles or baseline_styles(base[series])
    for name, g in base.groupby(series, sort=True):
        row = g.iloc[0]
        color, ls = styles[name]
        ax.axhline(row["mean"], color=color, ls=ls, lw=1.3, label=tex(name), zorder=1)
        if np.isfinite(row["sd"]):
            ax.axhspan(row["mean"] - row["sd"], row["mean"] + row["sd"], color=color,
                       alpha=0.08, lw=0, zorder=0)
        if annotate_below and row["n"] < annotate_below:
            ax.annotate(f"n={int(row['n'])}", (1.0, row["mean"]), xycoords=("axes fraction", "data"),
                        xytext=(-22, 2), textcoords="offset points", fontsize=7, color=color)


def log2_axis(ax, values):
    """K axis: log2 scale with a tick at every K present, written as integers."""
    vals = sorted({float(v) for v in values if np.isfinite(v) and v > 0})
    ax.set_xscale("log", base=2)
    if vals:
        ax.xaxis.set_major_locator(FixedLocator(vals))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlim(vals[0] / 1.3, vals[-1] * 1.3)


def finish(fig: Figure, axes, title: str, n_max: int | None, *, legend=True, note: str = "",
           subtitle: str | None = None):
    """Suptitle saying what the bands are and over how many seeds (or `subtitle`); one shared
    legend below."""
    seeds = f"mean ± 1 sd over n = {n_max} seeds per point" if n_max else "mean ± 1 sd"
    if n_max:
        seeds += " (fewer where marked)"
    if subtitle is not None:
        seeds = subtitle
    sub = "; ".join(t for t in (seeds, note) if t)
    # Wrap to the figure width (a subtitle wider than the figure is clipped), and reserve as many
    # title lines as the subtitle needs below the bold title.
    lines = textwrap.wrap(sub, width=max(30, int(fig.get_figwidth() * 12)))
    title_lines = textwrap.wrap(title, width=max(24, int(fig.get_figwidth() * 7.5)))
    large = FontProperties(size="large").get_size_in_points()
    small = FontProperties(size="small").get_size_in_points()
    # The bold title gets blank lines that reserve the subtitle's height (constrained layout only
    # knows about the suptitle); the subtitle is then placed just under the title's text lines.
    reserve = int(np.ceil(len(lines) * small / large))
    # (default position: constrained layout reserves room only for an auto-placed suptitle)
    fig.suptitle("\n".join(title_lines) + "\n" * reserve, fontsize="large", fontweight="bold")
    height_pt = fig.get_figheight() * 72
    top_pt = 0.02 * height_pt + len(title_lines) * large * 1.2 + 1  # suptitle top: y = 0.98
    fig.text(0.5, 1 - top_pt / height_pt, "\n".join(lines), ha="center", va="top",
             fontsize="small", color="#444444", transform=fig.transFigure)
    if legend:
        handles, labels = {}, []
        for ax in np.ravel(axes):
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in handles:
                    handles[lab] = h
                    labels.append(lab)
        if handles:
            ncol = legend_columns(labels, fig.get_figwidth())
            fig.legend([handles[lab] for lab in labels], labels, loc="outside lower center",
                       ncol=ncol, frameon=False)


def legend_columns(labels, width_in: float) -> int:
    """As many columns as fit the figure width (a legend wider than the figure gets clipped)."""
    widths = sorted((0.075 * len(re.sub(r"[$\\_]", "", lab)) + 0.7 for lab in labels), reverse=True)
    for ncol in range(min(len(labels), 5), 1, -1):
        if sum(widths[:ncol]) <= width_in * 0.95:
            return ncol
    return 1


def hide_unused(axes, used: int):
    for ax in np.ravel(axes)[used:]:
        ax.set_visible(False)
