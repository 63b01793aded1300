"""Every figure's plotted numbers against a hand computation on a realistic results frame (the
parquet schema, 3 seeds, an ERROR / RUNNING / PENDING trial), without any training."""

from __future__ import annotations

import functools

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import hiddenlab.analysis as A  # noqa: E402
from hiddenlab.analysis.synthetic import demo_results, demo_selection  # noqa: E402

SEEDS = 3


@functools.lru_cache(maxsize=1)
def frame() -> pd.DataFrame:
    return demo_results(seeds=SEEDS)


@functools.lru_cache(maxsize=None)
def built(fig_id: str):
    return A.build(fig_id, frame())


def finished(study, **where):
    """Final rows of finished trials of `study` matching `where`, straight from the raw frame:
    the hand computation every figure is checked against."""
    df = frame()
    df = df[(df["study"] == study) & (df["status"] == "TERMINATED") & df["test_acc"].notna()]
    for k, v in where.items():
        df = df[np.isclose(df[k].astype(float), v)] if isinstance(v, float) else df[df[k] == v]
    return df


def hand(values, scale=100.0):
    v = np.asarray(values, float) * scale
    return v.mean(), (v.std(ddof=1) if len(v) > 1 else np.nan), len(v)


def row(data, **where):
    d = data
    for k, v in where.items():
        d = d[np.isclose(d[k].astype(float), v)] if isinstance(v, float) else d[d[k] == v]
    assert len(d) == 1, f"expected one row for {where}, got {len(d)}"
    return d.iloc[0]


def check(r, values, scale=100.0):
    m, sd, n = hand(values, scale)
    assert r["mean"] == pytest.approx(m)
    assert r["n"] == n
    if n > 1:
        assert r["sd"] == pytest.approx(sd)


def test_notebook_api_unpacks_to_figure_and_frame():
    fig, data = A.fig3(frame())
    assert hasattr(fig, "savefig") and {"panel", "series", "x", "mean", "sd", "n"} <= set(data.columns)


def test_fig3_points_baselines_and_partial_seeds():
    r = built("ep-fig3")
    d = r.data
    assert set(d["panel"]) == {"Conv2", "Conv4", "Conv6", "Conv8"}
    assert set(d.loc[d["kind"] == "curve", "x"]) == {10, 30, 50, 70, 90}
    check(row(d, panel="Conv4", series="U_k", x=50.0),
          finished("ep-fig3", model="conv4", method="edgepopup", init="signed_constant",
                   k=0.5)["test_acc"])
    # the ERROR seed is left out: drawn with n = 2, and said so
    p = row(d, panel="Conv8", series="N_k", x=10.0)
    check(p, finished("ep-fig3", model="conv8", method="edgepopup", init="kaiming_normal",
                      k=0.1)["test_acc"])
    assert p["n"] == SEEDS - 1
    assert any("ERROR" in n for n in r.notes) and any("n = 2" in n for n in r.notes)
    b = row(d, panel="Conv6", series="learned (Adam)", kind="baseline")
    check(b, finished("ep-fig3", model="conv6", method="dense", optimizer="adam")["test_acc"])
    assert np.isnan(b["x"])
    assert "peaks at k = 50%" in r.reading


def test_fig4_width_curves():
    d = built("ep-fig4").data
    check(row(d, panel="Conv6", series="edge-popup U_k", x=2.0),
          finished("ep-fig4", model="conv6", method="edgepopup", init="signed_constant",
                   width_mult=2.0)["test_acc"])
    check(row(d, panel="Conv4", series="learned (SGD)", x=0.5),
          finished("ep-fig4", model="conv4", method="dense", width_mult=0.5)["test_acc"])
    assert "rises with width" in built("ep-fig4").reading


def test_fig5_constant_size_classes():
    d = built("ep-fig5").data
    assert d["series"].nunique() == 3 and d.groupby("series").size().eq(4).all()
    c2 = d[d["series"].str.startswith("c2")]
    assert "k = 50% at width 1" in c2["series"].iloc[0]
    trials = finished("ep-fig5", width_mult=2.0)
    trials = trials[np.isclose(trials["subnet_params"], c2["size"].iloc[0], rtol=0.05)]
    check(row(c2, x=2.0), trials["test_acc"])


def test_fig6_zhou_at_its_realised_fraction():
    d = built("ep-fig6").data
    z = finished("ep-fig6", model="conv4", method="supermask", init="kaiming_normal",
                 score_const=0.0)
    p = d[(d["panel"] == "Conv4") & (d["series"] == "Zhou et al. N_k")]
    p = p.loc[(p["x"] - z["kept_fraction"].mean() * 100).abs().idxmin()]
    assert p["x"] == pytest.approx(z["kept_fraction"].mean() * 100)
    assert p["x_sd"] == pytest.approx(z["kept_fraction"].std(ddof=1) * 100)
    check(p, z["test_acc"])
    e = row(d, panel="Conv6", series="edge-popup U_x", x=30.0)
    assert np.isnan(e["x_sd"])  # edge-popup's k is exact
    check(e, finished("ep-fig6", model="conv6", method="edgepopup", init="xavier_constant",
                      k=0.3)["test_acc"])


def test_fig7_and_fig10_inits():
    check(row(built("ep-fig7").data, panel="Conv6", series="scaled N_k", x=30.0),
          finished("ep-fig7", model="conv6", init="scaled_kaiming_normal", k=0.3)["test_acc"])
    check(row(built("ep-fig10").data, panel="ResNet-50", series="scaled U_k", x=10.0),
          finished("ep-fig10", init="scaled_signed_constant", k=0.1)["test_acc"])


def test_fig8_and_table2_imagenet():
    d = built("ep-fig8").data
    t = finished("ep-fig8", model="wide-resnet50-2", init="signed_constant")
    p = row(d, model="WRN-50-2", series="edge-popup U_k (k = 30%)")
    check(p, t["test_acc"])
    assert p["x"] == pytest.approx(t["subnet_params"].mean() / 1e6)
    assert set(d.loc[d["method"] == "dense", "model"]) == {"ResNet-18", "ResNet-34", "ResNet-50",
                                                           "ResNet-101"}
    tab = built("ep-table2")
    r = tab.data[(tab.data["model"] == "WRN-50-2") & (tab.data["init"] == "U_k")].iloc[0]
    assert r["published top-1 (%)"] == 73.3
    assert r["difference (pp)"] == pytest.approx(t["test_acc"].mean() * 100 - 73.3)
    assert "WRN-50-2" in tab.table["model"].tolist()


def test_fig9_edgepopup_vs_zhou_imagenet():
    d = built("ep-fig9").data
    check(row(d, series="edge-popup N_k", x=50.0),
          finished("ep-fig9", method="edgepopup", k=0.5)["test_acc"])
    assert "gap" in built("ep-fig9").reading


def test_architecture_tables():
    t1 = built("ep-table1").data.set_index("name")
    assert t1.at["conv2", "total params"] == 4_300_992  # 38,592 conv + 4,262,400 fc
    assert t1.at["conv6", "conv params"] == 1_144_512
    assert t1.at["conv4", "conv layers"] == "64, 64, pool, 128, 128, pool"
    s = built("sm-setup").data.set_index("name")
    assert s.at["lenet-300-100", "total params"] == 266_200
    assert s.at["slot-conv6", "fc params"] == 256 * 2 * 2 * 256 + 256 * 256 + 2560
    assert not built("sm-setup").notes  # count_params and the analytic count agree


def test_sm_k_log2_panels_and_running_trial():
    r = built("sm-k")
    d = r.data
    assert list(dict.fromkeys(d["panel"])) == ["LeNet-300-100 (MNIST)", "CONV-2 (CIFAR-10)",
                                               "CONV-4 (CIFAR-10)", "CONV-6 (CIFAR-10)"]
    p = row(d, panel="CONV-4 (CIFAR-10)", series="Slot Machines (GS)", x=64.0)
    check(p, finished("sm-k", model="slot-conv4", method="slot-gs", K=64.0)["test_acc"])
    assert p["n"] == SEEDS - 1 and any("RUNNING" in n for n in r.notes)
    check(row(d, panel="LeNet-300-100 (MNIST)", kind="baseline"),
          finished("sm-k", model="lenet-300-100", method="dense")["test_acc"])
    assert r.fig.axes[0].get_xscale() == "log"
    assert "rises with K" in r.reading


def test_sm_gs_ps():
    r = built("sm-gs-ps")
    check(row(r.data, panel="CONV-6 (CIFAR-10)", series="Slot Machines (PS)", x=64.0),
          finished("sm-gs-ps", model="slot-conv6", method="slot-ps", K=64.0)["test_acc"])
    assert r.reading.startswith("GS above PS at 24 of 24")
    assert any("PENDING" in n for n in r.notes)


def test_sm_finetune_total_epochs():
    d = built("sm-finetune").data
    t = finished("sm-finetune", model="slot-conv4", method="finetune", parent_epoch=25.0,
                 epochs=50.0)
    check(row(d, panel="CONV-4", series="finetuned from epoch 25", x=75.0), t["test_acc"])
    check(row(d, panel="CONV-4", series="learned (SGD) from scratch", x=75.0),
          finished("sm-finetune", model="slot-conv4", method="dense", epochs=75.0)["test_acc"])
    assert "12 equal budgets" in built("sm-finetune").reading


def test_sm_related_table_cells():
    r = built("sm-related")
    t = finished("sm-related", model="slot-conv4", method="slot-gs")
    p = row(r.data, panel="CONV-4", series="Slot Machines (GS)")
    check(p, t["test_acc"])
    cell = r.table.set_index("model").at["CONV-4", "Slot Machines (GS)"]
    assert cell.startswith(f"{t['test_acc'].mean() * 100:.1f} ± ") and "K=8" in cell


def test_scaling_laws_points_and_exponents():
    r = built("scaling-laws")
    t = finished("scaling-laws", method="edgepopup", width_mult=2.0)
    check(row(r.data, panel="width", series="edge-popup Conv4", x=2.0), 1 - t["test_acc"])
    e = r.extra["exponents"].set_index(["axis", "series"])
    # the synthetic errors follow 0.28 w^-0.30 (edge-popup) and 0.3 K^-0.15 (slot)
    a = e.loc[("width", "edge-popup Conv4")]
    assert a["alpha"] == pytest.approx(0.30, abs=0.02) and a["alpha_lo"] <= a["alpha"] <= a["alpha_hi"]
    assert e.loc[("K", "Slot Machines (GS) CONV-4"), "alpha"] == pytest.approx(0.15, abs=0.02)
    assert ("params", "edge-popup Conv4") in e.index


def test_flip_rate_per_epoch_and_layer():
    r = A.flip_rate(frame(), study="sm-k")
    d = r.data
    t = frame()
    t = t[(t["study"] == "sm-k") & (t["model"] == "slot-conv2") & (t["K_resolved"] == 8) &
          (t["method"] == "slot-gs") & (t["epoch"] == 3)]
    check(row(d, panel="Slot Machines (GS)", series="CONV-2 K=8", x=3.0), t["flip_rate"])
    layer = d[(d["kind"] == "layer") & (d["layer"] == "fc1") & (d["x"] == 3)]
    assert len(layer) == 1
    assert "at epoch 2" in r.reading


def test_selected_weights_sums_seeds():
    f = A.final_results(frame())
    f = f[(f["study"] == "quickstart") & (f["method"] == "edgepopup") & (f["model"] == "fc") &
          (f["k_resolved"] == 0.5)]
    assert len(f) == 2
    sels = {(s, r): demo_selection(["conv1", "fc1"], 0.5, seed=i)
            for i, (s, r) in enumerate(zip(f["study"], f["run_id"]))}
    r = A.selected_weights(frame(), sels)
    d = r.data
    c = d[d["layer"] == "fc1"]
    assert c["selected_count"].sum() == sum(sum(v["fc1"]["selected"]) for v in sels.values())
    widths = c["bin_hi"] - c["bin_lo"]
    assert (c["selected_density"] * widths).sum() == pytest.approx(1.0)
    assert "larger in magnitude" in r.reading and "2 of 2" in r.reading


def test_every_id_builds_on_the_full_frame():
    res = {i: built(i) for i in A.FIGURES}  # build() with no selections, as build_all would
    skipped = {k for k, v in res.items() if isinstance(v, A.Skipped)}
    assert skipped == {"selected-weights"}  # no artifacts given
    for k, v in res.items():
        if k in skipped:
            continue
        assert v.reading, k
        assert {"mean", "n"} <= set(v.data.columns) or v.table is not None, k


def test_quickstart_overview():
    r = built("quickstart")
    d = r.data
    assert list(dict.fromkeys(d["panel"])) == ["FC: vs k", "Conv2 (0.25x): vs k", "FC: vs K",
                                               "Conv2 (0.25x): vs K"]
    check(row(d, panel="FC: vs k", series="edge-popup", x=30.0),
          finished("quickstart", model="fc", method="edgepopup", k=0.3)["test_acc"])
    z = finished("quickstart", model="conv2", method="supermask")
    p = row(d, panel="Conv2 (0.25x): vs k", series="Zhou et al.")
    assert p["x"] == pytest.approx(z["kept_fraction"].mean() * 100)
    check(p, z["test_acc"])
    check(row(d, panel="FC: vs K", series="Slot Machines (PS)", x=4.0),
          finished("quickstart", model="fc", method="slot-ps", K=4.0)["test_acc"])
    check(row(d, panel="FC: vs K", series="finetuned (from GS)", kind="baseline"),
          finished("quickstart", model="fc", method="finetune")["test_acc"])
    assert r.reading.startswith("FC: ") and "finetuned (from GS)" in r.reading
