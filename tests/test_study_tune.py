"""Studies of your own on a real (embedded, 2-CPU) Ray: random search + ASHA really stops trials
and the export says so, re-runs skip them, `study plan` counts what then runs, Optuna finishes,
and a user study is shown, exported and drawn like a built-in one."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from hiddenlab.cli import main
from hiddenlab.study import export, plan
from hiddenlab.study.runner import Progress, RunOptions, run_study

pytestmark = pytest.mark.timeout(900)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ASHA = str(EXAMPLES / "asha-slot-ps-lr.yaml")
EPOCHS = 3


@pytest.fixture(scope="module")
def asha(ray_session, tmp_path_factory):
    """The ASHA example at smoke size and 3 epochs: 2 K x 4 learning rates."""
    storage = tmp_path_factory.mktemp("asha")
    # progress lines every 0.2 s: the smoke trials (~0.2 s an epoch) can all finish between two
    # lines a second apart, and then no line shows a running trial with an ETA
    opts = RunOptions(scale="smoke", storage=str(storage), overrides=[f"epochs={EPOCHS}"],
                      figures=False, heartbeat_s=0.2)
    planned = plan(ASHA, opts)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        summary = run_study(ASHA, opts)
    return storage, opts, planned, summary, err.getvalue()


def test_asha_stops_trials_early_and_the_export_marks_them(asha):
    storage, _, planned, summary, _ = asha
    df = export.load(str(storage), "asha-slot-ps-lr")
    last = df.sort_values("epoch").groupby("run_id").tail(1).set_index("run_id")
    assert len(last) == len(planned) == 8                  # the plan's count is what ran
    assert summary.ok and summary.counts.get("STOPPED", 0) + \
        summary.counts.get("TERMINATED", 0) == 8
    stopped = last[last.status == "STOPPED"]
    done = last[last.status == "TERMINATED"]
    assert len(stopped) >= 1 and len(done) >= 1, last.status.value_counts()
    assert (stopped.epoch < EPOCHS).all() and (stopped.stopped_epoch == stopped.epoch).all()
    rows = df[df.run_id.isin(stopped.index)]
    assert rows.test_acc.isna().all() and not rows.done.astype(bool).any()
    assert (done.epoch == EPOCHS).all() and done.test_acc.notna().all()
    assert done.stopped_epoch.isna().all() and done.done.astype(bool).all()
    # every trial is its own draw: K from the grid, lr from the log-uniform, resolved config
    assert sorted(last.groupby("K").size()) == [4, 4]
    assert last.lr.between(1, 300).all() and last.lr.nunique() == 8
    assert (last.method == "slot-ps").all() and (last.subset == 256).all()
    assert (last.device_kind == "cpu").all()


def test_progress_lines_show_done_running_left_and_an_eta(asha):
    log = asha[4]
    lines = [ln for ln in log.splitlines() if "progress:" in ln]
    assert lines, log[-2000:]
    assert any("running" in ln and "left" in ln and "ETA" in ln for ln in lines), lines
    assert "stopped by the scheduler at epoch" in log


def test_progress_line_counts_trials_and_estimates_what_is_left():
    trials = [SimpleNamespace(trial_id="a", status="RUNNING", config={"epochs": 3}),
              SimpleNamespace(trial_id="b", status="TERMINATED", config={"epochs": 3}),
              SimpleNamespace(trial_id="c", status="PENDING", config={"epochs": 5})]
    progress = Progress(total=4, epochs=3)
    assert progress.line(trials) == "1/4 done, 1 running, 2 left"     # no epoch timed yet
    progress.result("a", {"epoch": 1, "epoch_time_s": 2.0})
    progress.result("b", {"epoch": 3, "epoch_time_s": 4.0})
    # left: a 2 epochs, c 5, one trial not created yet 3 = 10 epochs x 3.0 s, one running
    assert progress.line(trials) == "1/4 done, 1 running, 2 left; 3.00 s/epoch, ETA 30s"
    trials[2].status = "RUNNING"
    assert progress.line(trials).endswith("ETA 15s")                  # two share the work


def test_rerun_skips_finished_and_stopped_trials(asha):
    storage, opts, _, first, _ = asha
    tune_dir = storage / "asha-slot-ps-lr" / "tune"
    before = sorted(p.name for p in tune_dir.iterdir())
    again = run_study(ASHA, opts)
    assert again.skipped == again.planned == 8 and again.counts == first.counts
    assert sorted(p.name for p in tune_dir.iterdir()) == before


def test_a_user_study_is_shown_exported_and_drawn(asha, capsys, tmp_path):
    storage = str(asha[0])
    name = "asha-slot-ps-lr"
    # found by name through the copy of its file kept in the storage
    assert (asha[0] / name / "study.yaml").is_file()
    assert main(["study", "show", name, "--storage", storage, "--scale", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "8/8 complete" in out and "STOPPED" in out and "slot-ps-fc-" in out
    assert main(["study", "export", name, "--storage", storage]) == 0
    assert "8 trials" in capsys.readouterr().out
    figures = tmp_path / "figures"
    assert main(["analysis", "figures", "--results", storage, "--study", name, "--out",
                 str(figures), "--no-pdf", "--id", "flip-rate"]) == 0
    assert (figures / "flip-rate.png").is_file() and (figures / "report.md").is_file()
    assert name in (figures / "report.md").read_text()


def test_an_optuna_study_finishes(ray_session, tmp_path):
    opts = RunOptions(scale="smoke", storage=str(tmp_path), num_samples=3, verbose=0,
                      figures=False)
    summary = run_study(str(EXAMPLES / "optuna-edgepopup.yaml"), opts)
    assert summary.ok and summary.counts == {"TERMINATED": 3} and summary.planned == 3
    df = export.load(str(tmp_path), "optuna-edgepopup")
    last = df.dropna(subset=["test_acc"])
    assert last.run_id.nunique() == 3 and last.k.between(0.05, 0.95).all()
    assert set(last.init) <= {"kaiming_normal", "signed_constant", "xavier_normal"}
    assert last.experiment.str.contains("edge-popup").all()


def test_plan_estimates_from_earlier_results_in_the_storage(asha, capsys):
    storage = str(asha[0])
    assert main(["study", "plan", ASHA, "--scale", "smoke", "--storage", storage,
                 "--set", f"epochs={EPOCHS}", "--no-calibrate"]) == 0
    out = capsys.readouterr().out
    assert "total: 8 trials" in out and f"estimate: {8 * EPOCHS} trial-epochs at most" in out
    assert "cpu:" in out and "earlier epochs (same size)" in out and "measured here" not in out
