"""The rest of Ray Tune's machinery from a study file, on a real embedded Ray (slow): HyperOpt,
HyperBand, median stopping and PBT; the logger callbacks' files; ASHA over a grid from the command
line; and every example, at reduced epochs, ending in figures."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hiddenlab.cli import main
from hiddenlab.study import export, plan
from hiddenlab.study.runner import RunOptions, run_study

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SAMPLED = """
name: {name}
fixed: {{method: slot-gs, model: fc, dataset: digits, subset: 128, epochs: 3, batch_size: 64,
        num_workers: 0, width_mult: 0.25}}
series:
  - label: gs
    sample:
      lr: {{loguniform: [0.01, 1.0]}}
      K: {{choice: [2, 4, 8]}}
tune:
  num_samples: 4
  search: {search}
  scheduler: {scheduler}
  max_concurrent_trials: 2
"""


@pytest.mark.parametrize("search, scheduler", [
    ("{name: hyperopt, seed: 0, n_initial_points: 2}", "fifo"),
    ("random", "{name: hyperband, reduction_factor: 2}"),
    ("random", "{name: median, grace_period: 1, min_samples_required: 2}"),
    ("random", "{name: pbt, perturbation_interval: 1}"),
])
def test_searchers_and_schedulers_run_the_asked_trials(search, scheduler, ray_session,
                                                      tmp_path):
    name = "tune-" + ("hyperopt" if "hyperopt" in search else scheduler.split()[1][:-1]
                      if "name" in scheduler else scheduler)
    path = tmp_path / "s.yaml"
    path.write_text(SAMPLED.format(name=name, search=search, scheduler=scheduler))
    opts = RunOptions(storage=str(tmp_path / "r"), verbose=0, figures=False)
    assert len(plan(str(path), opts)) == 4
    summary = run_study(str(path), opts)
    assert summary.ok, summary.counts
    df = export.load(str(tmp_path / "r"), name)
    trials = df.drop_duplicates("trial_id")
    assert len(trials) == 4 and set(trials.status) <= {"TERMINATED", "STOPPED"}
    assert df.lr.between(0.01 * 0.8 ** 3, 1.0 * 1.2 ** 3).all()    # PBT perturbs by 0.8/1.2
    assert set(df.K) <= {2, 4, 8}
    finished = df.dropna(subset=["test_acc"])
    assert finished.trial_id.nunique() == (trials.status == "TERMINATED").sum() >= 1


def test_callbacks_write_csv_tensorboard_mlflow_and_wandb_files(ray_session, tmp_path):
    path = tmp_path / "cb.yaml"
    path.write_text(textwrap.dedent("""
        name: callbacks
        fixed: {method: dense, model: fc, dataset: digits, subset: 128, epochs: 2,
                num_workers: 0, width_mult: 0.25}
        series: [{label: dense}]
        tune: {callbacks: [csv, tensorboard, mlflow, wandb]}
        """))
    storage = tmp_path / "r"
    summary = run_study(str(path), RunOptions(storage=str(storage), verbose=0, figures=False))
    assert summary.ok
    root = storage / "callbacks"
    trial_dirs = [p for p in (root / "tune").glob("*/*") if p.is_dir()]
    assert len(trial_dirs) == 1
    csv = (trial_dirs[0] / "progress.csv").read_text().splitlines()
    assert len(csv) == 3 and "val_acc" in csv[0]                # header + 2 epochs
    assert list(trial_dirs[0].glob("events.out.tfevents*"))
    metrics = list((root / "mlruns").glob("*/*/metrics/val_acc"))
    assert metrics and len(metrics[0].read_text().splitlines()) == 2
    assert list((root / "wandb").glob("offline-run-*/run-*.wandb"))


def test_asha_over_a_grid_from_the_command_line(ray_session, tmp_path, capsys):
    storage = str(tmp_path)
    args = ["study", "run", str(EXAMPLES / "scaling-width-depth.yaml"), "--scale", "smoke",
            "--storage", storage, "--set", "epochs=3", "--scheduler", "asha",
            "--scheduler-opt", "grace_period=1", "--scheduler-opt", "reduction_factor=2",
            "--no-figures", "-q"]
    assert main(args) == 0
    df = export.load(storage, "scaling-width-depth")
    last = df.sort_values("epoch").groupby("run_id").tail(1)
    assert len(last) == 18 and set(last.status) == {"TERMINATED", "STOPPED"}
    assert (last[last.status == "STOPPED"].epoch < 3).all()
    capsys.readouterr()
    assert main(args[:-1]) == 0     # the re-run (not quiet) finds every trial finished or stopped
    assert "all 18 trial(s) already finished" in capsys.readouterr().err


@pytest.mark.parametrize("example", ["asha-slot-ps-lr.yaml", "optuna-edgepopup.yaml",
                                     "scaling-width-depth.yaml", "fixed_subnetwork.py"])
def test_examples_run_and_end_in_figures(example, ray_session, tmp_path):
    path = str(EXAMPLES / example)
    opts = RunOptions(scale="smoke", storage=str(tmp_path), verbose=0)
    planned = plan(path, opts)
    summary = run_study(path, opts)
    assert summary.ok and summary.planned == len(planned), summary.counts
    name = planned.study
    df = export.load(str(tmp_path), name)
    assert df.run_id.nunique() == len(planned)
    assert summary.figures and (Path(summary.figures) / "report.md").is_file()
    assert list(Path(summary.figures).glob("*.png"))
