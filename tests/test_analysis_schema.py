"""What the exporter actually writes: scales, JSON per-layer flip rates, renamed metrics, per-run
histogram bins, and a round trip through `hiddenlab.study.export` itself."""

from __future__ import annotations


import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import hiddenlab.analysis as A  # noqa: E402
from hiddenlab.analysis.figures.dynamics import _merge_runs, layer_flips, rebin  # noqa: E402
from hiddenlab.analysis.results import one_scale  # noqa: E402
from hiddenlab.analysis.synthetic import results_frame, trial_record  # noqa: E402


def _ep3(accs, scale, epochs, seed0=0):
    return results_frame(trial_record("ep-fig3", acc=a, seed=s, method="edgepopup",
                                      model="conv4", k=0.5, epochs=epochs, scale=scale)
                         for s, a in enumerate(accs, start=seed0))


def test_one_scale_per_study_prefers_paper_and_says_so():
    df = pd.concat([_ep3([0.30], "smoke", 2), _ep3([0.70, 0.72, 0.74], "paper", 4)])
    kept, notes = one_scale(df)
    assert set(kept["scale"]) == {"paper"}
    assert "1 trials of ep-fig3 at scale smoke left out (showing scale paper" in notes["ep-fig3"]
    r = A.build("ep-fig3", df)
    assert r.data.loc[r.data["series"] == "N_k", "mean"].item() == pytest.approx(72.0)
    assert any("scale smoke left out" in n for n in r.notes)
    smoke = A.build_all(df, {}, ids=["ep-fig3"], scale="smoke")["ep-fig3"]
    assert smoke.data.loc[smoke.data["series"] == "N_k", "mean"].item() == pytest.approx(30.0)


def test_pooled_configurations_are_flagged():
    rows = [trial_record("ep-fig3", acc=0.7, seed=s, method="edgepopup", model="conv4", k=0.5)
            for s in range(2)]
    rows += [trial_record("ep-fig3", acc=a, seed=0, method="dense", model="conv4", lr=lr)
             for a, lr in ((0.6, 0.1), (0.7, 0.01))]
    r = A.build("ep-fig3", results_frame(rows))
    b = r.data[r.data["kind"] == "baseline"].iloc[0]
    assert b["configs"] == 2 and b["n"] == 2
    assert any("more than one configuration" in n for n in r.notes)


def test_per_layer_flip_rates_come_from_the_exporters_json_column():
    recs = [trial_record("quickstart", acc=0.5, seed=s, method="edgepopup", model="conv2")
            for s in range(2)]
    df = results_frame(recs)
    assert df["flip_rate_layers"].map(type).eq(str).all()  # the exporter writes JSON text
    assert not any(c.startswith("flip_rate_layers/") for c in df.columns)
    want = np.mean([r.results[2]["flip_rate_layers"]["fc1"] for r in recs]) * 100
    long = layer_flips(df)
    assert set(long["layer"]) == {"conv1", "conv2", "fc1", "fc2", "fc3"}
    d = A.flip_rate(df).data
    assert row_of(d, layer="fc1", x=3)["mean"] == pytest.approx(want)
    # a dense trial reports no per-layer flips: nothing to expand, and no per-layer panel
    dense = results_frame([trial_record("quickstart", acc=0.5, method="dense", model="conv2")])
    assert layer_flips(dense).empty


def row_of(d, **where):
    for k, v in where.items():
        d = d[d[k] == v]
    assert len(d) == 1
    return d.iloc[0]


def test_rebin_keeps_counts_and_merges_runs_with_different_bins():
    edges = np.linspace(-1, 1, 11)
    counts = np.arange(10.0)
    new = np.linspace(-2, 2, 21)
    assert rebin(edges, counts, new).sum() == pytest.approx(counts.sum())
    assert rebin(edges, counts, edges) == pytest.approx(counts)
    a = {"l": {"bins": edges.tolist(), "selected": [1] * 10, "unselected": [2] * 10}}
    b = {"l": {"bins": (edges * 1.5).tolist(), "selected": [3] * 10, "unselected": [4] * 10}}
    m, how = _merge_runs([a, b])
    assert m["l"]["selected"].sum() == pytest.approx(40)
    assert m["l"]["unselected"].sum() == pytest.approx(60)
    assert m["l"]["bins"][0] == -1.5 and "re-binned" in how


def test_exporter_round_trip(tmp_path):
    from hiddenlab.study import export
    import pyarrow.parquet as pq

    records = {}
    for seed, acc in enumerate((0.70, 0.74)):
        for k in (0.3, 0.5):
            cfg = {"method": "edgepopup", "model": "conv4", "k": k, "seed": seed, "epochs": 2,
                   "dataset": "cifar10"}
            rid = f"edgepopup-conv4-{seed}-{k}"
            results = []
            for e in (1, 2):
                m = {"epoch": e, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0,
                     "val_acc": 0.5, "lr": 0.1 / e, "params": 2425024,
                     "flip_rate": 0.1 / e, "flip_rate_layers": {"conv1": 0.2 / e, "fc3": 0.05 / e},
                     "kept_fraction": k, "subnet_params": int(k * 2425024),
                     "best_val_epoch": 1, "best_val_acc": 0.5,
                     "epoch_time_s": 3.0, "wall_time_s": 3.0 * e, "hostname": "node-x",
                     "eval_mode": "deterministic"}
                if e == 2:
                    m.update(test_acc=acc + k / 10, test_loss=0.5, best_val_test_acc=acc,
                             best_val_test_loss=0.6, done=True)
                results.append(m)
            records[rid] = export.TrialRecord(rid, cfg, "TERMINATED", "exp", f"t{seed}{k}",
                                              results=results)
    (tmp_path / "ep-fig3").mkdir()
    pq.write_table(export.table("ep-fig3", records), tmp_path / "ep-fig3" / "results.parquet")
    df = A.load_results(tmp_path)
    r = A.build("ep-fig3", df)
    p = r.data[(r.data["series"] == "N_k") & (r.data["x"] == 50)].iloc[0]
    assert p["mean"] == pytest.approx((0.75 + 0.79) / 2 * 100) and p["n"] == 2
    assert p.get("configs", 1) == 1
    assert set(df["epoch_lr"].dropna()) == {0.1, 0.05}  # the metric `lr`, renamed
    d = A.flip_rate(df).data
    assert d[(d["layer"] == "conv1") & (d["x"] == 2)]["mean"].item() == pytest.approx(10.0)
    host, _, total = A.report.cost_tables(df)
    assert host["hostname"].tolist() == ["node-x"] and total.startswith("4 trials (4 finished)")
