"""The driver killed mid-study (SIGKILL, its embedded Ray with it) and the same command run again
finishes with the same final table as an uninterrupted run. Slow: three study runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hiddenlab.study import export
from hiddenlab.study.registry import get_study

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

STUDY = "sm-related"
ARGS = ["--scale", "smoke", "--set", "epochs=4", "--quiet", "--no-figures", "--num-cpus", "2"]
METRICS = ["train_loss", "train_acc", "val_loss", "val_acc", "kept_fraction", "test_acc",
           "test_loss", "flip_rate", "epoch_lr"]


def command(storage) -> list[str]:
    return [sys.executable, "-m", "hiddenlab", "study", "run", STUDY, "--storage", str(storage),
            *ARGS]


def progress(storage) -> tuple[int, int]:
    """(trials done, epochs reported) from Ray Tune's result files in the storage."""
    done = epochs = 0
    root = storage / STUDY / "tune"
    if not root.exists():
        return 0, 0
    for path in root.glob("*/*/result.json"):
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        epochs += sum('"epoch"' in ln for ln in lines)
        done += any('"done": true' in ln for ln in lines)
    return done, epochs


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def test_driver_killed_mid_study_then_rerun(tmp_path):
    n_trials = len(get_study(STUDY).plan("smoke"))
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    subprocess.run(command(reference), check=True, timeout=600)

    proc = subprocess.Popen(command(crashed), start_new_session=True)
    try:
        deadline = time.time() + 400
        while time.time() < deadline:
            done, _ = progress(crashed)
            if done >= 3:
                break
            if proc.poll() is not None:
                pytest.fail(f"the study ended (rc {proc.returncode}) before it could be killed")
            time.sleep(0.2)
        else:
            pytest.fail("no progress to interrupt")
    finally:
        kill_group(proc)   # the driver and its embedded Ray, like a crash
    done, epochs = progress(crashed)
    assert 0 < done < n_trials, "the kill must land mid-study"

    subprocess.run(command(crashed), check=True, timeout=600)

    ref, got = export.load(str(reference), STUDY), export.load(str(crashed), STUDY)
    for df in (ref, got):
        assert (df.status == "TERMINATED").all()
        assert not df.duplicated(["run_id", "epoch"]).any()
        assert df.run_id.nunique() == n_trials and len(df) == 4 * n_trials
    key = ["run_id", "epoch"]
    ref, got = ref.sort_values(key).reset_index(drop=True), got.sort_values(key).reset_index(
        drop=True)
    assert (ref[key] == got[key]).all().all()
    for m in METRICS:
        a, b = ref[m].to_numpy(float), got[m].to_numpy(float)
        assert np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True), m
    assert len(export.experiments(export.Storage(str(crashed)), STUDY)) == 1  # restored, not new
