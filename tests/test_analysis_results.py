"""Reading results: parquet loading, last-epoch reduction, seed grouping, aggregation, the
accuracy a figure reports. Rows come from the exporter's own row builder (`synthetic`)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hiddenlab.config import TrialConfig
from hiddenlab.analysis import aggregate, final_results, load_results, load_selections, trial_table
from hiddenlab.analysis.results import config_key, use_accuracy
from hiddenlab.analysis.synthetic import results_frame, trial_record, write_demo_storage
from hiddenlab.study.trainer import lr_factor


def test_final_is_last_epoch_of_terminated_trials_only():
    df = results_frame([
        trial_record("s", acc=0.7, seed=0, method="edgepopup", model="conv4"),
        trial_record("s", acc=0.8, seed=1, method="edgepopup", model="conv4"),
        trial_record("s", acc=0.9, seed=2, method="edgepopup", model="conv4", status="ERROR",
                     epochs_done=2),
        trial_record("s", acc=0.9, seed=3, method="edgepopup", model="conv4", status="RUNNING",
                     epochs_done=3),
        trial_record("s", acc=0.9, seed=4, method="edgepopup", model="conv4", status="PENDING"),
        trial_record("s", acc=0.9, seed=5, method="edgepopup", model="conv4", status="STOPPED",
                     epochs_done=2),
    ])
    f = final_results(df)
    assert sorted(f["acc"]) == [0.7, 0.8]
    assert (f["epoch"] == 4).all()
    assert final_results(f) is f  # idempotent: a final frame passes through
    t = trial_table(df)
    assert dict(t["status"].value_counts()) == {"TERMINATED": 2, "ERROR": 1, "RUNNING": 1,
                                               "PENDING": 1, "STOPPED": 1}
    assert t["finished"].sum() == 2
    assert t.loc[t["status"] == "ERROR", "error"].str.contains("TrialDiverged").all()
    assert t.loc[t["status"] == "STOPPED", "epoch"].item() == 2


def test_seeds_share_a_point_and_configs_do_not():
    df = results_frame(trial_record("s", acc=0.7, seed=s, method="edgepopup", model="conv4",
                                    k=k) for s in range(3) for k in (0.3, 0.5))
    f = final_results(df)
    assert f.groupby("point").size().tolist() == [3, 3]
    assert f.groupby("point")["k_resolved"].nunique().eq(1).all()


def test_learning_rates_are_the_config_field_and_tell_points_apart():
    # One schema: `lr` is the resolved config field, the schedule's value is `epoch_lr`.
    df = results_frame(trial_record("s", acc=0.7, seed=s, method="dense", model="conv4", lr=lr)
                       for s in range(2) for lr in (0.1, 0.01))
    f = final_results(df)
    assert sorted(f["lr"].unique()) == [0.01, 0.1]
    assert f.groupby("point").size().tolist() == [2, 2]
    # the last (4th) epoch starts 3 epochs into dense's cosine schedule
    want = 0.1 * lr_factor(TrialConfig(method="dense", model="conv4", lr=0.1, epochs=4), 3)
    last = f[np.isclose(f["lr"], 0.1)]["epoch_lr"]
    assert last.to_numpy() == pytest.approx([want, want]) and want < 0.1


def test_recipe_defaults_resolve_before_points_are_formed():
    # dense's recipe lr is 0.01: a trial giving it and one leaving it out are one point
    df = results_frame([trial_record("s", acc=0.7, seed=0, method="dense", model="conv4"),
                        trial_record("s", acc=0.8, seed=1, method="dense", model="conv4",
                                     lr=0.01)])
    f = final_results(df)
    assert f["point"].nunique() == 1 and (f["lr"] == 0.01).all()


def test_best_validation_accuracy_is_chosen_and_falls_back_to_the_last_epoch():
    df = results_frame([trial_record("s", acc=0.70, best_acc=0.72, seed=s, method="slot-gs",
                                     model="slot-conv2", K=8) for s in range(2)])
    f = final_results(df)
    assert list(f["acc"]) == pytest.approx([0.70, 0.70])
    assert (f["best_val_epoch"] == 3).all()  # the validation peak is one epoch early
    best, fallback = use_accuracy(f, "best_val_test_acc")
    assert list(best["acc"]) == pytest.approx([0.72, 0.72]) and fallback == 0
    old = f.assign(best_val_test_acc=[np.nan, 0.72])  # exported before it was recorded
    best, fallback = use_accuracy(old, "best_val_test_acc")
    assert list(best["acc"]) == pytest.approx([0.70, 0.72]) and fallback == 1


def test_config_key_treats_none_and_nan_alike_and_ignores_seed():
    a = pd.DataFrame({"method": ["x", "x"], "depth": [None, np.nan], "seed": [0, 1],
                      "synthetic_shape": [[3, 32, 32], (3, 32, 32)]})
    k = config_key(a)
    assert k.iloc[0] == k.iloc[1]


def test_config_key_ignores_how_a_trial_ran():
    # identity=False fields (threads, device, ...) never make two points
    a = pd.DataFrame({"method": ["x", "x"], "threads": [1, 8], "device": ["cpu", "cuda"],
                      "k": [0.5, 0.5]})
    k = config_key(a)
    assert k.iloc[0] == k.iloc[1]
    assert config_key(a.assign(k=[0.3, 0.5])).nunique() == 2


def test_aggregate_is_mean_sample_sd_and_n_in_percent():
    f = pd.DataFrame({"g": ["a", "a", "a", "b"], "acc": [0.70, 0.72, 0.77, 0.5]})
    out = aggregate(f, ["g"]).set_index("g")
    assert out.at["a", "mean"] == pytest.approx(73.0)
    assert out.at["a", "sd"] == pytest.approx(np.std([70, 72, 77], ddof=1))
    assert out.at["a", "n"] == 3
    assert np.isnan(out.at["b", "sd"]) and out.at["b", "n"] == 1


def test_load_results_concatenates_studies(tmp_path):
    records = [trial_record(study, acc=acc, method="edgepopup", model="conv4")
               for study, acc in (("ep-fig3", 0.7), ("sm-k", 0.9))]
    write_demo_storage(tmp_path, records, selection_studies=())
    df = load_results(tmp_path)
    assert sorted(df["study"].unique()) == ["ep-fig3", "sm-k"]
    only = load_results(tmp_path, ["sm-k", "ep-fig9"])  # a missing study is simply absent
    assert set(only["study"]) == {"sm-k"}
    assert final_results(only)["acc"].tolist() == [0.9]
    # list columns (tuple config fields) survive the round trip
    assert list(df["synthetic_shape"].iloc[0]) == [3, 32, 32]


def test_load_results_refuses_a_missing_folder(tmp_path):
    from hiddenlab.config import ConfigError

    with pytest.raises(ConfigError, match="results"):
        load_results(tmp_path / "nope")


def test_load_selections_reads_artifacts_of_the_frame(tmp_path):
    df = results_frame([trial_record("sm-k", acc=0.9, method="slot-gs", model="slot-conv2",
                                     K=4)])
    rid = df["run_id"].iloc[0]
    art = tmp_path / "sm-k" / "artifacts" / rid
    art.mkdir(parents=True)
    sel = {"conv1": {"bins": [0, 1, 2], "selected": [1, 2], "unselected": [3, 4]}}
    (art / "selection.json").write_text(json.dumps(sel))
    assert load_selections(tmp_path, df) == {("sm-k", rid): sel}
    assert load_selections(tmp_path) == {("sm-k", rid): sel}


def test_finetune_total_epochs_is_parent_epoch_plus_epochs():
    df = results_frame([trial_record("sm-finetune", acc=0.8, method="finetune",
                                     model="slot-conv4", parent="runs/x/slot", parent_epoch=25,
                                     epochs=50)])
    assert final_results(df)["total_epochs"].tolist() == [75.0]


def test_finetune_without_parent_epoch_starts_at_the_parents_last_epoch():
    parent = trial_record("sm-finetune", acc=0.7, method="slot-gs", model="slot-conv4", K=8,
                          epochs=6)
    child = trial_record("sm-finetune", acc=0.8, method="finetune", model="slot-conv4",
                         parent=f"runs/{parent.run_id}", parent_run_id=parent.run_id, epochs=3)
    f = final_results(results_frame([parent, child])).set_index("method")
    assert f.at["finetune", "total_epochs"] == 9.0 and f.at["slot-gs", "total_epochs"] == 6.0
