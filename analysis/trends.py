"""Computed one-line readings of a curve ("rises with K up to 16, then flat"), so the report's text
is derived from the numbers it sits beside and changes when they do.

A difference counts only when it exceeds the tolerance: the larger of 0.5 percentage points and the
median standard deviation of the points (differences inside one sd are noise with 3-5 seeds).
"""

from __future__ import annotations

import numpy as np

from .core import fmt_x


def tolerance(sd, floor: float = 0.5) -> float:
    sd = np.asarray(sd, float)
    sd = sd[np.isfinite(sd)]
    return max(floor, float(np.median(sd))) if sd.size else floor


def shape(x, y, tol: float) -> dict:
    """Classify a curve: flat / rises / falls / peaks; `plateau_x` is the first x within `tol` of
    the best value when everything beyond it stays within `tol` as well."""
    order = np.argsort(np.asarray(x, float))
    x, y = np.asarray(x, float)[order], np.asarray(y, float)[order]
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(y) == 0:
        return {"shape": "empty"}
    best = int(np.argmax(y))
    out = {"best_x": x[best], "best_y": y[best], "first": (x[0], y[0]), "last": (x[-1], y[-1])}
    if len(y) == 1 or y.max() - y.min() <= tol:
        out["shape"] = "flat"
        return out
    near = y >= y[best] - tol
    p = int(np.argmax(near))  # first point within tol of the best
    if near[p:].all():  # p > 0 here: the range exceeds tol, so the first point is not near
        out["shape"] = "rises"
        out["plateau_x"] = x[p] if p < len(y) - 1 else None
        out["plateau_y"] = y[p]
    elif p == 0:
        out["shape"] = "falls"
    else:
        out["shape"] = "peaks"
    return out


def phrase(x, y, xname: str, tol: float, unit: str = "%", xunit: str = "") -> str:
    """'rises with K up to 16, then flat (91.2 → 97.9%)' and friends."""
    s = shape(x, y, tol)
    kind = s["shape"]
    if kind == "empty":
        return "no points"
    (_, y0), (_, y1) = s["first"], s["last"]
    if kind == "flat":
        return f"flat in {xname} ({min(y0, y1):.1f}–{max(y0, y1, s['best_y']):.1f}{unit})"
    if kind == "falls":
        return f"falls with {xname} ({y0:.1f} → {y1:.1f}{unit})"
    if kind == "rises":
        if s.get("plateau_x") is not None:
            return (f"rises with {xname} up to {fmt_x(s['plateau_x'])}{xunit}, then flat "
                    f"({y0:.1f} → {s['best_y']:.1f}{unit})")
        return f"rises with {xname} throughout ({y0:.1f} → {y1:.1f}{unit})"
    return f"peaks at {xname} = {fmt_x(s['best_x'])}{xunit} ({s['best_y']:.1f}{unit})"


def compare(a: float, b: float, tol: float) -> str:
    """'above' / 'below' / 'level with' for a vs b."""
    if not (np.isfinite(a) and np.isfinite(b)):
        return "not comparable with"
    if a > b + tol:
        return "above"
    if a < b - tol:
        return "below"
    return "level with"
