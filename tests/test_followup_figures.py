"""The iterand-k and biprop-k figures (analysis/figures/followups.py) on a results frame made from
the studies' own plans (one row per trial, accuracy a known function of its config): every
plotted point against that function."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from hiddenlab.analysis.registry import build  # noqa: E402
from hiddenlab.study.registry import get_study  # noqa: E402


def plan_frame(study: str, acc, seeds: int = 2) -> pd.DataFrame:
    """Final-epoch rows in the parquet schema for every trial of `study`'s smoke plan;
    test_acc = acc(cfg) + a seed offset averaging to 0."""
    rows = []
    for t in get_study(study).plan("smoke", seeds=seeds).trials:
        c = t.cfg
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in c.to_dict().items()}
        rows.append({**d, "study": study, "scale": "smoke", "series": t.series,
                     "run_id": t.run_id, "status": "TERMINATED", "epoch": c.epochs,
                     "done": True, "test_acc": acc(c) + (0.01 if c.seed else -0.01),
                     "k_resolved": c.keep, "K_resolved": c.num_values, "init_resolved": c.init,
                     "lr_resolved": c.lr})
    return pd.DataFrame(rows)


def point(data, panel, series, x=None):
    d = data[(data["panel"] == panel) & (data["series"] == series)]
    if x is not None:
        d = d[np.isclose(d["x"].astype(float), x)]
    assert len(d) == 1, (panel, series, x)
    return d.iloc[0]


def iterand_acc(c):
    if c.method == "edgepopup":
        return 0.5 + 0.2 * c.k
    return 0.6 + 0.2 * c.k + 0.1 * c.rerand_rate


def test_iterand_figure_plots_every_point_on_its_line():
    r = build("iterand-k", plan_frame("iterand-k", iterand_acc))
    data = r.data
    for k in (0.1, 0.3, 0.5, 0.7, 0.9):
        ep = point(data, "Conv6: % kept", "edge-popup", k * 100)
        it = point(data, "Conv6: % kept", "IteRand r=0.1", k * 100)
        assert ep["mean"] == pytest.approx(100 * (0.5 + 0.2 * k))
        assert it["mean"] == pytest.approx(100 * (0.61 + 0.2 * k))
        assert ep["n"] == it["n"] == 2
    for rate in (0.0, 0.01, 0.1, 1.0):  # the r panel holds the k line's r = 0.1 trial too
        p = point(data, "Conv6, k=50%: r", "IteRand k=50%", rate)
        assert p["mean"] == pytest.approx(100 * (0.7 + 0.1 * rate))
    base = point(data, "Conv6, k=50%: r", "edge-popup k=50%")
    assert base["kind"] == "baseline" and base["mean"] == pytest.approx(60.0)
    # the r ablation's other rates stay off the k panel (they have one k each)
    assert set(data.loc[data["panel"] == "Conv6: % kept", "series"]) == \
        {"edge-popup", "IteRand r=0.1"}
    assert "+11.0 pp" in r.reading


def test_biprop_figure_one_line_per_method_and_panel_per_model():
    acc = lambda c: (0.7 if c.method == "biprop" else 0.65) - 0.1 * c.k  # noqa: E731
    r = build("biprop-k", plan_frame("biprop-k", acc))
    data = r.data
    assert set(data["panel"]) == {"Conv6", "ResNet-18 (CIFAR)"}
    for panel in ("Conv6", "ResNet-18 (CIFAR)"):
        for k in (0.1, 0.2, 0.4, 0.5, 0.6, 0.8):
            b = point(data, panel, "biprop (MPT-1/32), scaled N_k", k * 100)
            e = point(data, panel, "edge-popup, N_k", k * 100)
            assert b["mean"] == pytest.approx(100 * (0.7 - 0.1 * k))
            assert e["mean"] == pytest.approx(100 * (0.65 - 0.1 * k))
    assert "Conv6 +5.0 pp" in r.reading and "ResNet-18 (CIFAR) +5.0 pp" in r.reading


def test_figures_skip_without_their_studies():
    empty = plan_frame("iterand-k", iterand_acc).iloc[0:0]
    assert not hasattr(build("iterand-k", empty), "data")
    assert not hasattr(build("biprop-k", empty), "data")


def test_biprop_published_rows_match_biprop_trials_only():
    from hiddenlab.analysis.published import compare
    from hiddenlab.config import TrialConfig

    rows = []
    for seed, acc in ((0, 0.93), (1, 0.95)):
        for method in ("biprop", "edgepopup"):
            c = TrialConfig(method=method, model="cifar-resnet18", k=0.2, dataset="cifar10",
                            seed=seed)
            d = {k: list(v) if isinstance(v, tuple) else v for k, v in c.to_dict().items()}
            rows.append({**d, "study": "biprop-k", "scale": "paper", "run_id": c.run_id(),
                         "status": "TERMINATED", "epoch": c.epochs, "done": True,
                         "test_acc": 0.1, "best_val_test_acc": acc if method == "biprop"
                         else 0.5,
                         "k_resolved": c.keep, "K_resolved": 1, "init_resolved": c.init,
                         "lr_resolved": c.lr, "subnet_params": 0.2 * 11.16e6})
    table = compare(pd.DataFrame(rows))
    bp = table[table["paper"].str.startswith("biprop")].set_index("published")
    # the best-validation network's test accuracy, as the reference reports its best epoch
    assert bp.loc[94.66, "measured"] == pytest.approx(94.0) and bp.loc[94.66, "n"] == 2
    assert bp.loc[2.6, "measured"] == pytest.approx(2.232)
    assert bp.loc[94.8, "n"] == 0 and bp.loc[91.48, "n"] == 0  # +BN, VGG-Small: never matched
