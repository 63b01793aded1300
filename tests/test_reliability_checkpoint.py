"""Corrupt checkpoints. In a study, a trial whose latest Tune checkpoint is unreadable (a node
died while writing it) falls back to the one before it, sets the bad file aside, and finishes
with the numbers of an uninterrupted run: one failure, no retries into the same bad file, no
finished epoch lost. In the foreground, `hiddenlab train` names the corrupt file (test_bad_input).

The study test is a real Ray run: its trial's worker is frozen mid-trial, every checkpoint but
the oldest is cut short, and the worker is killed, so Tune restores it from a corrupt one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hiddenlab.config import TrialConfig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EPOCHS = 10
TRIAL = dict(method="slot-gs", K=8, model="fc", dataset="digits", epochs=EPOCHS, batch_size=16,
             lr=0.2, schedule="cosine", num_workers=0, device="cpu", threads=1,
             save_selection=False)
SCRIPT = f"""
import sys
from hiddenlab.study.registry import Study
from hiddenlab.study.runner import RunOptions, run_study
from hiddenlab.study.spaces import Phase, Series

study = Study(name="ckpt", title="one slot-machine trial", feeds=(),
              phases=lambda scale: [Phase("main", [Series("gs", {TRIAL!r})])])
summary = run_study(study, RunOptions(scale="smoke", storage=sys.argv[1], num_cpus=1, verbose=2,
                                      figures=False, max_failures=3))  # 2: the trial's log too
sys.exit(0 if summary.ok else 1)
"""


def checkpoints(storage: Path) -> list[Path]:
    """The trial's Tune checkpoint folders that hold a state, oldest first."""
    found = [p.parent for p in storage.glob("ckpt/tune/*/*/checkpoint_*/checkpoint.pt")]
    return sorted(found, key=lambda p: p.name)


def descendants(root: int) -> list[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1]
                                               .split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out = []
    for pid in parents:
        p = pid
        while p in parents and p not in (0, 1):
            p = parents[p]
            if p == root:
                out.append(pid)
                break
    return out


def trial_worker(driver: int) -> int | None:
    for pid in descendants(driver):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("ray::ImplicitFunc") or cmd.startswith("ray::hiddenlab_trial"):
            return pid
    return None


def result_lines(storage: Path) -> int:
    """Results the driver has taken in (its JSON logger writes a line per result)."""
    return sum(len(p.read_text().splitlines()) for p in storage.glob("ckpt/tune/*/*/result.json"))


def settled_checkpoints(storage: Path, quiet: float = 3.0, timeout: float = 120) -> list[Path]:
    """The checkpoint folders once the driver has acted on all that the frozen worker sent it:
    neither they nor the results have changed for `quiet` seconds (a loaded machine delays
    the driver)."""
    last, since, deadline = None, time.time(), time.time() + timeout
    while time.time() < deadline:
        now = (tuple(checkpoints(storage)), result_lines(storage))
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet:
            break
        time.sleep(0.2)
    return list(last[0])


def freeze_corrupt_kill(proc: subprocess.Popen, storage: Path) -> list[Path]:
    """Once the trial has written its third checkpoint: freeze its worker, cut short every
    checkpoint but the oldest, kill the worker. Returns the corrupted folders.

    Tune registers a function trainable's checkpoint by a `save` call to the worker after it
    has logged the result, so the frozen worker may hold back the newest one: the driver then
    restores from the one before. Registering one deletes the oldest of three (two kept), so
    whichever of the two newest the driver restores from is corrupt and the oldest left is
    whole, once the third exists (with only two, the driver may know just the first)."""
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        worker = trial_worker(proc.pid)
        found = checkpoints(storage)
        if worker and found and int(found[-1].name.split("_")[1]) >= 2:
            os.kill(worker, signal.SIGSTOP)
            corrupted = settled_checkpoints(storage)[1:]
            for folder in corrupted:
                state = folder / "checkpoint.pt"
                state.write_bytes(state.read_bytes()[:100])
            os.kill(worker, signal.SIGKILL)
            return corrupted
        time.sleep(0.05)
    pytest.fail(f"the trial never had three checkpoints (rc {proc.poll()})")


def reference() -> list[dict]:
    """The same trial uninterrupted, in the foreground."""
    from hiddenlab.study.trainer import run_trial

    class Keep:
        progress, threads = False, 1

        def __init__(self):
            self.rows = []

        def load_state(self):
            return None

        def report(self, metrics, state, artifacts):
            self.rows.append(metrics)

    keep = Keep()
    run_trial(TrialConfig(**TRIAL), keep)
    return keep.rows


def test_corrupt_latest_checkpoint_falls_back_to_the_one_before(tmp_path):
    from hiddenlab.study import export

    storage = tmp_path / "results"
    script = tmp_path / "study.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "HIDDENLAB_OFFLINE": "1"}
    log = tmp_path / "study.log"   # a file, not a pipe: nobody reads a pipe while we wait
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(script), str(storage)], env=env,
                                start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
        try:
            corrupted = freeze_corrupt_kill(proc, storage)
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    err = log.read_text()
    assert proc.returncode == 0, err[-3000:]
    assert corrupted
    # the trial was restored from a corrupt one (Tune has removed that folder since)
    assert "is unreadable (" in err and "trying the checkpoint before it" in err, err[-3000:]

    df = export.load(str(storage), "ckpt").sort_values("epoch")
    assert (df.status == "TERMINATED").all()
    assert int(df.num_failures.max()) == 1            # the kill; no retry into the bad file
    assert df.epoch.tolist() == list(range(1, EPOCHS + 1))  # nothing lost, nothing doubled
    ref = reference()
    for m in ("train_loss", "val_acc", "flip_rate"):
        assert np.allclose(df[m].to_numpy(float), [r[m] for r in ref], rtol=1e-5, atol=1e-7), m
    assert df.test_acc.dropna().iloc[-1] == pytest.approx(ref[-1]["test_acc"])
