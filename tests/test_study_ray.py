"""Studies on a real (embedded, 2-CPU) Ray: run, results table, re-run skips, NaN trials."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from hiddenlab.study import export
from hiddenlab.config import ConfigError, field_names
from hiddenlab.study.registry import Study, get_study
from hiddenlab.study.runner import RunOptions, plan_study, run_study
from hiddenlab.study.spaces import Phase, Series

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def quickstart(ray_session, tmp_path_factory):
    storage = tmp_path_factory.mktemp("qs")
    opts = RunOptions(scale="smoke", storage=str(storage), verbose=0, figures=False)
    summary = run_study("quickstart", opts)
    return storage, opts, summary


def test_quickstart_smoke_runs_every_trial(quickstart):
    storage, opts, summary = quickstart
    plan = plan_study("quickstart", opts)[2]
    assert summary.ok, summary.counts
    assert summary.planned == len(plan) and summary.counts == {"TERMINATED": len(plan)}
    df = export.load(str(storage), "quickstart")
    # one row per trial x epoch, every planned trial, no duplicates
    assert set(df.run_id) == {t.run_id for t in plan.trials}
    assert not df.duplicated(["run_id", "epoch"]).any()
    for t in plan.trials:
        rows = df[df.run_id == t.run_id]
        assert sorted(rows.epoch) == list(range(1, t.cfg.epochs + 1)), t.run_id
        last = rows[rows.epoch == t.cfg.epochs].iloc[0]
        assert 0 <= last.test_acc <= 1 and bool(last.done)
        assert rows[rows.epoch < t.cfg.epochs].test_acc.isna().all()
    # the contract's columns
    for col in ["study", "run_id", "status", "error", *field_names(), "K_resolved",
                "k_resolved", "init_resolved", "epoch", "train_loss", "train_acc", "val_loss",
                "val_acc", "flip_rate", "epoch_lr", "epoch_time_s", "kept_fraction", "params",
                "subnet_params", "test_acc", "test_loss", "done", "wall_time_s", "hostname",
                "series", "scale", "phase"]:
        assert col in df.columns, col
    assert (df.status == "TERMINATED").all() and df.error.isna().all()
    assert set(df.scale) == {"smoke"} and set(df.phase) == {"select", "finetune"}
    slots = df[(df.method == "slot-gs")]
    assert (slots.K_resolved == slots.K).all()
    ep = df[df.method == "edgepopup"].drop_duplicates("run_id")
    assert sorted(ep.k_resolved.unique()) == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert (df.wall_time_s > 0).all()
    # artifacts and kept parent epochs in the storage
    for rid in set(df[df.method.isin(["edgepopup", "slot-gs", "slot-ps", "supermask"])].run_id):
        sel = json.loads((storage / "quickstart" / "artifacts" / rid / "selection.json")
                         .read_text())
        layer = next(iter(sel.values()))
        assert set(layer) == {"bins", "selected", "unselected"}
    children = df[df.method == "finetune"].drop_duplicates("run_id")
    assert len(children) == 2 and set(children.parent_epoch) == {1}
    for _, child in children.iterrows():
        assert os.path.isfile(os.path.join(child.parent, "epoch_1.pt"))
        assert child.parent_run_id in set(df.run_id)
    # Ray Tune's own experiment directories live under the storage
    exps = export.experiments(export.Storage(str(storage)), "quickstart")
    assert len(exps) == 2 and all(e.startswith("smoke-") for e in exps)


def test_rerun_skips_completed_trials_and_export_is_idempotent(quickstart):
    import ray

    storage, opts, _ = quickstart
    path = storage / "quickstart" / "results.parquet"
    before = path.read_bytes()
    exps = sorted(os.listdir(storage / "quickstart" / "tune"))
    again = run_study("quickstart", opts)
    assert again.ok and again.skipped == again.planned
    assert sorted(os.listdir(storage / "quickstart" / "tune")) == exps   # no new experiment
    assert path.read_bytes() == before
    export.export(str(storage), "quickstart")
    assert path.read_bytes() == before
    assert pq.read_table(path).num_rows > 0
    assert ray.is_initialized()   # the session's Ray was reused, not shut down


def test_show_prints_progress_and_a_table(quickstart, capsys):
    from hiddenlab.cli import main

    storage, _, summary = quickstart
    assert main(["study", "show", "quickstart", "--storage", str(storage), "--scale",
                 "smoke"]) == 0
    out = capsys.readouterr().out
    assert f"{summary.planned}/{summary.planned} complete" in out
    assert "test_acc" in out and "slot-gs-fc-" in out
    assert main(["study", "show", "quickstart", "--storage", str(storage)]) == 0
    assert "0/64 complete" in capsys.readouterr().out      # the paper-scale plan is not run


def _digits(method: str, **kw) -> dict:
    d = dict(method=method, model="fc", dataset="digits", subset=256, epochs=2, batch_size=64,
             num_workers=0, width_mult=0.25)
    d.update(kw)
    return d


def test_a_diverging_trial_fails_alone_with_its_reason(ray_session, tmp_path):
    study = Study(
        name="nan-test", title="one trial diverges", feeds=(),
        phases=lambda scale: [Phase("main", [
            Series("ok", _digits("dense", lr=0.05)),
            Series("diverges", _digits("dense", lr=1e6)),
            Series("ok too", _digits("edgepopup", lr=0.1)),
        ])])
    opts = RunOptions(scale="smoke", storage=str(tmp_path), max_failures=3, verbose=0,
                      figures=False)
    summary = run_study(study, opts)
    assert summary.counts == {"TERMINATED": 2, "ERROR": 1}
    assert not summary.ok
    df = export.load(str(tmp_path), "nan-test")
    bad = df[df.lr == 1e6]
    assert set(bad.status) == {"ERROR"}
    assert "TrialDiverged" in bad.error.iloc[0] and "loss is" in bad.error.iloc[0]
    assert (bad.num_failures == 1).all()      # not retried: a retry would diverge again
    good = df[df.lr != 1e6]
    assert set(good.status) == {"TERMINATED"} and good.error.isna().all()
    assert sorted(good.groupby("run_id").epoch.max()) == [2, 2]
    # a re-run counts the diverged trial as finished: nothing to run
    again = run_study(study, opts)
    assert again.skipped == 3 and again.counts == summary.counts
    # --retry-errored runs it again (and it fails again, alone)
    retry = run_study(study, RunOptions(**{**opts.__dict__, "retry_errored": True}))
    assert retry.skipped == 2 and retry.counts == summary.counts


def test_finetune_with_a_missing_parent_is_refused_before_ray(tmp_path):
    study = Study(
        name="orphan", title="finetune from nothing", feeds=(),
        phases=lambda scale: [Phase("main", [
            Series("orphan", _digits("finetune", parent=str(tmp_path / "nothing"),
                                     parent_epoch=1))])])
    with pytest.raises(ConfigError) as e:
        run_study(study, RunOptions(scale="smoke", storage=str(tmp_path / "s"), verbose=0))
    assert e.value.field == "parent"
    assert not (tmp_path / "s" / "orphan").exists()


def test_gpus_that_the_cluster_lacks_are_refused(ray_session, tmp_path):
    import ray

    if ray.cluster_resources().get("GPU", 0) >= 1:
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError) as e:
        run_study("quickstart", RunOptions(scale="smoke", storage=str(tmp_path),
                                           gpus_per_trial=1, verbose=0))
    assert e.value.field == "gpus_per_trial"
    assert not (tmp_path / "quickstart" / "tune").exists()
