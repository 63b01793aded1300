"""Power-law fits and their bootstrap intervals; the computed trend readings."""

from __future__ import annotations

import numpy as np
import pytest

from hiddenlab.analysis import fit_power_law
from hiddenlab.analysis.trends import phrase, shape


def test_exact_power_law_is_recovered():
    x = np.repeat([1, 2, 4, 8, 16], 3).astype(float)
    fit = fit_power_law(x, 0.4 * x ** -0.25, groups=x, n_boot=200)
    assert fit["alpha"] == pytest.approx(0.25)
    assert fit["a"] == pytest.approx(0.4)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["alpha_lo"] == pytest.approx(0.25) and fit["alpha_hi"] == pytest.approx(0.25)


def test_bootstrap_interval_covers_the_truth_with_noise():
    rng = np.random.default_rng(1)
    x = np.repeat([0.5, 1, 2, 4], 5).astype(float)
    err = 0.3 * x ** -0.3 * np.exp(rng.normal(0, 0.03, x.size))
    fit = fit_power_law(x, err, groups=x, n_boot=500)
    assert fit["alpha_lo"] < 0.3 < fit["alpha_hi"]
    assert fit["alpha_hi"] - fit["alpha_lo"] < 0.1
    assert fit["n_points"] == 4 and fit["n_trials"] == 20
    again = fit_power_law(x, err, groups=x, n_boot=500)  # seeded: reproducible
    assert again["alpha_lo"] == fit["alpha_lo"]


@pytest.mark.parametrize("y, kind, text", [
    ([90, 94, 97, 97.2, 97.1, 97.3], "rises", "rises with K up to 8, then flat (90.0 → 97.3%)"),
    ([90, 92, 94, 96, 98, 99.5], "rises", "rises with K throughout (90.0 → 99.5%)"),
    ([70, 75, 80, 75, 70, 65], "peaks", "peaks at K = 8 (80.0%)"),
    ([80, 78, 75, 70, 65, 60], "falls", "falls with K (80.0 → 60.0%)"),
    ([80, 80.2, 79.9, 80.1, 80, 80.3], "flat", "flat in K (80.0–80.3%)"),
])
def test_trend_phrases(y, kind, text):
    x = [2, 4, 8, 16, 32, 64]
    assert shape(x, y, 0.5)["shape"] == kind
    assert phrase(x, y, "K", 0.5) == text
