"""Reading results: parquet loading, last-epoch reduction, seed grouping, aggregation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hiddenlab.analysis import aggregate, final_results, load_results, load_selections, trial_table
from hiddenlab.analysis.results import config_key
from hiddenlab.analysis.synthetic import trial_rows


def _frame(*trials):
    return pd.DataFrame([r for t in trials for r in t])


def test_final_is_last_epoch_of_terminated_trials_only():
    df = _frame(
        trial_rows("s", acc=0.7, seed=0, method="edgepopup", model="conv4"),
        trial_rows("s", acc=0.8, seed=1, method="edgepopup", model="conv4"),
        trial_rows("s", acc=0.9, seed=2, method="edgepopup", model="conv4", status="ERROR",
                   epochs_done=2),
        trial_rows("s", acc=0.9, seed=3, method="edgepopup", model="conv4", status="RUNNING",
                   epochs_done=3),
        trial_rows("s", acc=0.9, seed=4, method="edgepopup", model="conv4", status="PENDING"),
    )
    f = final_results(df)
    assert sorted(f["acc"]) == [0.7, 0.8]
    assert (f["epoch"] == 4).all()
    assert final_results(f) is f  # idempotent: a final frame passes through
    t = trial_table(df)
    assert dict(t["status"].value_counts()) == {"TERMINATED": 2, "ERROR": 1, "RUNNING": 1,
                                               "PENDING": 1}
    assert t["finished"].sum() == 2
    assert t.loc[t["status"] == "ERROR", "error"].str.contains("TrialDiverged").all()


def test_seeds_share_a_point_and_configs_do_not():
    df = _frame(*(trial_rows("s", acc=0.7, seed=s, method="edgepopup", model="conv4", k=k)
                  for s in range(3) for k in (0.3, 0.5)))
    f = final_results(df)
    assert f.groupby("point").size().tolist() == [3, 3]
    assert f.groupby("point")["k_resolved"].nunique().eq(1).all()


def test_lr_metric_column_does_not_merge_different_learning_rates():
    # The contract's per-epoch metric `lr` and the config field `lr` share a column; its last
    # row is ~0 for every cosine trial, so points use the peak over epochs instead.
    df = _frame(*(trial_rows("s", acc=0.7, seed=s, method="dense", model="conv4", lr=lr)
                  for s in range(2) for lr in (0.1, 0.01)))
    f = final_results(df)
    assert f["lr"].max() < 1e-3  # the collision this guards against
    assert f.groupby("point").size().tolist() == [2, 2]
    peak = 0.5 * (1 + np.cos(np.pi / 4))  # epoch 1 of 4 on the synthetic cosine schedule
    assert sorted(f["lr_peak"].unique()) == pytest.approx([0.01 * peak, 0.1 * peak])


def test_config_key_treats_none_and_nan_alike_and_ignores_seed():
    a = pd.DataFrame({"method": ["x", "x"], "depth": [None, np.nan], "seed": [0, 1],
                      "synthetic_shape": [[3, 32, 32], (3, 32, 32)]})
    k = config_key(a)
    assert k.iloc[0] == k.iloc[1]


def test_aggregate_is_mean_sample_sd_and_n_in_percent():
    f = pd.DataFrame({"g": ["a", "a", "a", "b"], "acc": [0.70, 0.72, 0.77, 0.5]})
    out = aggregate(f, ["g"]).set_index("g")
    assert out.at["a", "mean"] == pytest.approx(73.0)
    assert out.at["a", "sd"] == pytest.approx(np.std([70, 72, 77], ddof=1))
    assert out.at["a", "n"] == 3
    assert np.isnan(out.at["b", "sd"]) and out.at["b", "n"] == 1


def test_load_results_concatenates_studies_and_names_them(tmp_path):
    for study, acc in (("ep-fig3", 0.7), ("sm-k", 0.9)):
        (tmp_path / study).mkdir()
        f = _frame(trial_rows(study, acc=acc, method="edgepopup", model="conv4"))
        f.drop(columns="study").to_parquet(tmp_path / study / "results.parquet")  # no column
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
    df = _frame(trial_rows("sm-k", acc=0.9, method="slot-gs", model="slot-conv2", K=4))
    rid = df["run_id"].iloc[0]
    art = tmp_path / "sm-k" / "artifacts" / rid
    art.mkdir(parents=True)
    sel = {"conv1": {"bins": [0, 1, 2], "selected": [1, 2], "unselected": [3, 4]}}
    (art / "selection.json").write_text(json.dumps(sel))
    assert load_selections(tmp_path, df) == {("sm-k", rid): sel}
    assert load_selections(tmp_path) == {("sm-k", rid): sel}


def test_finetune_total_epochs_is_parent_epoch_plus_epochs():
    df = _frame(trial_rows("sm-finetune", acc=0.8, method="finetune", model="slot-conv4",
                           parent="runs/x/slot", parent_epoch=25, epochs=50))
    assert final_results(df)["total_epochs"].tolist() == [75.0]
