"""Every figure's plotted numbers against a hand computation on a realistic results frame (rows
from the exporter's own row builder, 3 seeds, an ERROR / RUNNING / PENDING / STOPPED trial),
without any training."""

from __future__ import annotations

import functools
import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import hiddenlab.analysis as A  # noqa: E402
from hiddenlab.analysis.registry import default_ids  # noqa: E402
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
    return match(df, **where)


def match(df, **where):
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


def best_val(rows):
    """Slot Machines figures report the best-validation network; make sure that differs."""
    assert not np.allclose(rows["best_val_test_acc"], rows["test_acc"])
    return rows["best_val_test_acc"]


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


def test_fig6_zhou_at_zhous_own_sparsity():
    r = built("ep-fig6")
    d = r.data
    z = finished("ep-fig6", model="conv4", method="supermask", init="kaiming_normal",
                 score_const=0.0)
    p = d[(d["panel"] == "Conv4") & (d["series"] == "Zhou et al. N_k")]
    p = p.loc[(p["x"] - z["kept_fraction_paper"].mean() * 100).abs().idxmin()]
    assert p["x"] == pytest.approx(z["kept_fraction_paper"].mean() * 100)
    assert p["x_sd"] == pytest.approx(z["kept_fraction_paper"].std(ddof=1) * 100)
    assert not np.isclose(p["x"], z["kept_fraction"].mean() * 100)
    check(p, z["test_acc"])
    assert any(n.startswith("Zhou's x: `kept_fraction_paper`") and "lack" not in n
               for n in r.notes)
    e = row(d, panel="Conv6", series="edge-popup U_x", x=30.0)
    assert np.isnan(e["x_sd"])  # edge-popup's k is exact
    check(e, finished("ep-fig6", model="conv6", method="edgepopup", init="xavier_constant",
                      k=0.3)["test_acc"])
    assert (d["accuracy"] == "test_acc").all()


def test_fig6_zhou_without_the_paper_sparsity_falls_back_and_says_so():
    df = frame()
    old = df["method"].eq("supermask") & df["model"].eq("conv4")
    df = df.assign(kept_fraction_paper=df["kept_fraction_paper"].mask(old))
    r = A.build("ep-fig6", df)
    z = finished("ep-fig6", model="conv4", method="supermask", init="xavier_normal",
                 score_const=1.0)
    p = r.data[(r.data["panel"] == "Conv4") & (r.data["series"] == "Zhou et al. N_x")]
    p = p.loc[(p["x"] - z["kept_fraction"].mean() * 100).abs().idxmin()]
    assert p["x"] == pytest.approx(z["kept_fraction"].mean() * 100)
    n_old = finished("ep-fig6", model="conv4", method="supermask").shape[0]
    n_all = finished("ep-fig6", method="supermask").shape[0]
    assert any(f"{n_old} of {n_all} Zhou trials lack it and use `kept_fraction`" in n
               for n in r.notes)


def test_fig7_and_fig10_draw_both_scaled_forms_and_their_difference():
    r7 = built("ep-fig7")
    check(row(r7.data, panel="Conv6", series="scaled N_k", x=30.0),
          finished("ep-fig7", model="conv6", init="scaled_kaiming_normal", k=0.3)["test_acc"])
    code = finished("ep-fig7", model="conv6", init="scaled_kaiming_normal_code", k=0.3)
    check(row(r7.data, panel="Conv6", series="scaled N_k (code)", x=30.0), code["test_acc"])
    r10 = built("ep-fig10")
    check(row(r10.data, panel="ResNet-50", series="scaled U_k", x=10.0),
          finished("ep-fig10", init="scaled_signed_constant", k=0.1)["test_acc"])
    # the difference per k: correct (1/sqrt k) minus the code's (1/sqrt(1-k)) scaled form
    gap = r10.extra["scaled-code"]
    g = row(gap, init="scaled U_k", x=10.0)
    want = (finished("ep-fig10", init="scaled_signed_constant", k=0.1)["test_acc"].mean() -
            finished("ep-fig10", init="scaled_signed_constant_code", k=0.1)["test_acc"].mean())
    assert g["difference"] == pytest.approx(want * 100)
    assert g["std_ratio"] == pytest.approx(np.sqrt(0.1 / 0.9))
    assert row(gap, init="scaled N_k", x=50.0)["std_ratio"] == pytest.approx(1.0)
    assert len(gap) == 8 and set(gap["init"]) == {"scaled N_k", "scaled U_k"}
    cell = r10.table[(r10.table["init"] == "scaled U_k") & (r10.table["k (%)"] == "10")]
    assert cell["difference (pp)"].item() == f"{want * 100:+.2f}"
    assert "scaled 1/√k minus the code's 1/√(1−k)" in r10.reading
    assert any("`scaled_*_code`" in n for n in r7.notes)
    # the (code) line is dashed in its series' colour
    lines = {ln.get_label(): ln for ln in r7.fig.axes[1].get_lines()}
    a, b = lines["scaled $N_k$"], lines["scaled $N_k$ (code)"]
    assert a.get_color() == b.get_color() and b.get_linestyle() == "--"


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
    check(p, best_val(finished("sm-k", model="slot-conv4", method="slot-gs", K=64.0)))
    assert p["n"] == SEEDS - 1 and any("RUNNING" in n for n in r.notes)
    # the learned baseline starts from the slot values' distribution: kept, not filtered out
    dense = finished("sm-k", model="lenet-300-100", method="dense")
    assert (dense["init"] == "slot-code").all() and len(dense) == SEEDS
    check(row(d, panel="LeNet-300-100 (MNIST)", kind="baseline"), best_val(dense))
    assert r.fig.axes[0].get_xscale() == "log"
    assert "rises with K" in r.reading
    assert (d["accuracy"] == "best_val_test_acc").all()
    assert any("`best_val_test_acc`" in n and "early stopping" in n for n in r.notes)


def test_sm_gs_ps():
    r = built("sm-gs-ps")
    check(row(r.data, panel="CONV-6 (CIFAR-10)", series="Slot Machines (PS)", x=64.0),
          best_val(finished("sm-gs-ps", model="slot-conv6", method="slot-ps", K=64.0)))
    assert r.reading.startswith("GS above PS at 24 of 24")
    assert any("PENDING" in n for n in r.notes)


def test_sm_finetune_total_epochs():
    r = built("sm-finetune")
    d = r.data
    t = finished("sm-finetune", model="slot-conv4", method="finetune", parent_epoch=5.0,
                 epochs=10.0)
    check(row(d, panel="CONV-4", series="finetuned from epoch 5", x=15.0), best_val(t))
    scratch = finished("sm-finetune", model="slot-conv4", method="dense", epochs=15.0)
    assert (scratch["init"] == "slot-code").all()
    check(row(d, panel="CONV-4", series="learned (SGD) from scratch", x=15.0), best_val(scratch))
    check(row(d, panel="CONV-4", series="Slot Machines (GS)", x=10.0),
          best_val(finished("sm-finetune", model="slot-conv4", method="slot-gs")))
    assert "12 equal budgets" in r.reading


def test_sm_related_table_cells():
    r = built("sm-related")
    t = finished("sm-related", model="slot-conv4", method="slot-gs")
    p = row(r.data, panel="CONV-4", series="Slot Machines (GS)")
    check(p, best_val(t))
    cell = r.table.set_index("model").at["CONV-4", "Slot Machines (GS)"]
    assert cell.startswith(f"{t['best_val_test_acc'].mean() * 100:.1f} ± ") and "K=8" in cell
    check(row(r.data, panel="CONV-4", series="learned (SGD)"),
          best_val(finished("sm-related", model="slot-conv4", method="dense")))


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
    layer = row(d, kind="layer", layer="fc1", x=3.0)
    # per layer: the exporter's JSON column, averaged over the seeds of the drawn configuration
    assert set(d.loc[d["kind"] == "layer", "series"]) == {"LeNet-300-100 K=8"}
    rows = frame()
    rows = rows[(rows["study"] == "sm-k") & (rows["method"] == "slot-gs") &
                (rows["model"] == "lenet-300-100") & (rows["K_resolved"] == 8) &
                (rows["epoch"] == 3)]
    check(layer, [json.loads(v)["fc1"] for v in rows["flip_rate_layers"]])
    assert "at epoch 1" in r.reading


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
    ids = default_ids(frame())
    assert ids == list(A.FIGURES) + ["study:my-sweep"]  # the one study no figure claims
    res = {i: built(i) for i in ids}  # build() with no selections, as build_all would
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
    assert p["x"] == pytest.approx(z["kept_fraction"].mean() * 100)  # hiddenlab's own axis
    check(p, z["test_acc"])
    check(row(d, panel="FC: vs K", series="Slot Machines (PS)", x=4.0),
          finished("quickstart", model="fc", method="slot-ps", K=4.0)["test_acc"])
    check(row(d, panel="FC: vs K", series="finetuned (from GS)", kind="baseline"),
          finished("quickstart", model="fc", method="finetune")["test_acc"])
    assert r.reading.startswith("FC: ") and "finetuned (from GS)" in r.reading


def test_real_data_every_method_against_dense():
    r = built("real-data")
    d = r.data
    assert list(d.loc[d["kind"] == "point", "series"]) == [
        "edge-popup", "Zhou et al.", "Slot Machines (GS)", "Slot Machines (PS)"]
    p = row(d, series="Slot Machines (PS)")
    ps = finished("real-data", method="slot-ps")
    check(p, ps["test_acc"])
    dense = finished("real-data", method="dense")
    b = row(d, kind="baseline")
    check(b, dense["test_acc"])
    assert p["best_val_mean"] == pytest.approx(ps["best_val_test_acc"].mean() * 100)
    t = r.table.set_index("method")
    m, sd, n = hand(ps["test_acc"])
    assert t.at["Slot Machines (PS)", "test acc, last epoch (%)"] == f"{m:.2f} ± {sd:.2f} (n=3)"
    assert t.at["Slot Machines (PS)", "vs learned dense (pp)"] == \
        f"{m - hand(dense['test_acc'])[0]:+.2f}"
    assert r.title == "Every method on real data: LeNet-300-100 (Fashion-MNIST)"
    ax = r.fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "edge-popup", "Zhou et al.", "Slot Machines (GS)", "Slot Machines (PS)"]
    assert any(ln.get_label() == "learned (SGD)" for ln in ax.get_lines())  # the reference


def test_generic_study_figure_curves_and_stopped_trials():
    r = built("study:my-sweep")
    d = r.data
    sweep = finished("my-sweep")
    test = d[d["metric"] == "test_acc"]
    # one line per series and value of the other swept field, seeds averaged
    check(row(test, field="width_mult", series="edge-popup, lr=0.1", x=2.0),
          match(sweep, method="edgepopup", lr=0.1, width_mult=2.0)["test_acc"])
    check(row(test, field="lr", series="edge-popup, width_mult=0.5", x=0.05),
          match(sweep, method="edgepopup", lr=0.05, width_mult=0.5)["test_acc"])
    # dense does not sweep lr: a reference line per width in the lr panel
    b = row(test, field="lr", kind="baseline", series="dense, width_mult=2")
    check(b, match(sweep, method="dense", width_mult=2.0)["test_acc"])
    # the stopped seed has no test accuracy: the point has n = 1
    assert row(test, field="width_mult", series="edge-popup, lr=0.05", x=4.0)["n"] == 1
    # validation: best_val_acc of finished trials; stopped trials are points of their own
    val = d[d["metric"] == "best_val_acc"]
    check(row(val, field="width_mult", series="edge-popup, lr=0.1", x=1.0, kind="curve"),
          match(sweep, method="edgepopup", lr=0.1, width_mult=1.0)["best_val_acc"])
    raw = frame()
    stopped = raw[(raw["study"] == "my-sweep") & (raw["status"] == "STOPPED")]
    last = stopped.sort_values("epoch").groupby("run_id").tail(1)
    st = val[(val["kind"] == "stopped") & (val["field"] == "width_mult")]
    assert sorted(st["mean"]) == pytest.approx(sorted(last["best_val_acc"] * 100))
    assert set(st["epoch"]) == {2}
    assert "3 trials stopped early by the scheduler at epoch 2: not finished, in the " \
        "validation panels and the best-trials table only" in r.notes


def test_generic_study_best_trials_and_power_laws():
    r = built("study:my-sweep")
    best = r.extra["best-trials"]
    raw = frame()
    last = raw[raw["study"] == "my-sweep"].sort_values("epoch").groupby("run_id").tail(1)
    last = last[last["status"].isin(["TERMINATED", "STOPPED"])]
    top = last.sort_values("best_val_acc", ascending=False).head(10)
    assert list(best["run_id"]) == list(top["run_id"])
    assert best["best_val_acc"].to_numpy() == pytest.approx(top["best_val_acc"] * 100)
    assert {"width_mult", "lr", "epochs", "best_val_epoch"} <= set(r.table.columns)
    e = r.extra["exponents"].set_index(["axis", "series"])
    # synthetic errors: 0.3 w^-0.25 + 4 (lr - 0.12)^2 (edge-popup), 0.27 w^-0.2 (dense)
    assert e.loc[("width", "dense"), "alpha"] == pytest.approx(0.2, abs=0.02)
    assert e.loc[("width", "edge-popup, lr=0.1"), "alpha"] == pytest.approx(0.25, abs=0.02)
    assert ("params", "dense") in e.index
    assert "power-law fits of test error" in r.tables


def test_generic_study_with_a_stopped_leader_and_no_swept_field():
    from hiddenlab.analysis.synthetic import results_frame, trial_record

    recs = [trial_record("abc", acc=0.6 + 0.01 * s, seed=s, method="edgepopup", model="conv2",
                         dataset="cifar10", series="edge-popup") for s in range(2)]
    recs += [trial_record("abc", acc=0.7, seed=s, method="dense", model="conv2",
                          dataset="cifar10", series="dense") for s in range(2)]
    # stopped after 3 of 4 epochs with the best validation so far
    recs.append(trial_record("abc", acc=0.99, seed=9, method="dense", model="conv2",
                             dataset="cifar10", series="dense", status="STOPPED",
                             epochs_done=3))
    r = A.build("study:abc", results_frame(recs))
    assert r.title == "Study abc"
    pts = r.data[r.data["metric"] == "test_acc"].set_index("series")
    assert pts.at["dense", "mean"] == pytest.approx(70.0) and pts.at["dense", "n"] == 2
    top = r.table.iloc[0]
    assert top["status"] == "STOPPED" and top["test, last epoch (%)"] == "–"
    assert top["epochs run"] == 3
    assert "best trial by validation: dense" in r.reading


def test_scaled_init_claim_uses_the_form_the_paper_ran():
    from hiddenlab.analysis.published import claims

    c = claims({i: built(i) for i in ("ep-fig7", "ep-fig10")}).set_index("figure")
    ev = c.at["ep-fig10", "evidence"]
    d = built("ep-fig10").data
    d = d[d["kind"] == "curve"].set_index(["series", "x"])["mean"]
    gaps = [abs(d[(base, k)] - d[(f"scaled {base} (code)", k)])
            for base in ("N_k", "U_k") for k in (10.0, 30.0, 50.0, 70.0)]
    assert f"ImageNet mean |scaled - unscaled| {np.mean(gaps):.1f} pp (reference-code scaled " \
        "form" in ev
    assert "CIFAR-10 (ep-fig7) gap" in ev
