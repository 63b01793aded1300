"""Foreground trials share the machine's cores (hiddenlab.study.cores): alone a trial takes every
core; with others running each takes its share, and a trial's torch thread count follows as
trials start and end. (The timing this buys: benchmarks/side_by_side.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from hiddenlab.study import cores
from hiddenlab.study.cores import CoreShare, _start_time


@pytest.fixture
def other_trial(tmp_path):
    """Another running process registered as a foreground trial; `stop()` ends it."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    (tmp_path / str(proc.pid)).write_text(_start_time(proc.pid))

    def stop():
        proc.kill()
        proc.wait()

    proc.stop = stop
    yield proc
    stop()


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr(cores, "machine_cores", lambda: 4)


def test_alone_every_core_and_the_entry_is_removed_after(tmp_path, four_cores):
    with CoreShare(folder=tmp_path) as share:
        assert share.threads == 4
        assert (tmp_path / str(os.getpid())).exists()
    assert list(tmp_path.iterdir()) == []


def test_two_trials_take_half_each(tmp_path, four_cores, other_trial):
    with CoreShare(folder=tmp_path) as share:
        assert share.threads == 2 and share.running() == 2


def test_more_trials_than_cores_take_one_thread_each(tmp_path, monkeypatch, other_trial):
    monkeypatch.setattr(cores, "machine_cores", lambda: 1)
    with CoreShare(folder=tmp_path) as share:
        assert share.threads == 1


def test_dead_and_recycled_pids_do_not_count(tmp_path, four_cores):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / str(dead.pid)).write_text("1")
    (tmp_path / str(os.getppid())).write_text("0")   # alive, but not the process that wrote it
    with CoreShare(folder=tmp_path) as share:
        assert share.threads == 4
    assert list(tmp_path.iterdir()) == []   # both stale entries removed


def test_given_threads_opt_out(tmp_path, four_cores, other_trial):
    with CoreShare(fixed=3, folder=tmp_path) as share:
        assert share.threads == 3
        assert not (tmp_path / str(os.getpid())).exists()   # not counted by the others


def test_thread_count_follows_trials_starting_and_ending(tmp_path, four_cores, monkeypatch):
    monkeypatch.setattr(cores, "RECHECK_S", 0.0)
    layer = torch.nn.Linear(4, 4)
    with CoreShare(folder=tmp_path) as share:
        share.follow()
        torch.set_num_threads(share.threads)
        layer(torch.zeros(1, 4))
        assert torch.get_num_threads() == 4
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        try:
            (tmp_path / str(proc.pid)).write_text(_start_time(proc.pid))
            layer(torch.zeros(1, 4))   # the next forward pass takes the new share
            assert torch.get_num_threads() == 2
        finally:
            proc.kill()
            proc.wait()
        layer(torch.zeros(1, 4))
        assert torch.get_num_threads() == 4
    layer(torch.zeros(1, 4))           # the hook is gone with the trial
    torch.set_num_threads(1)
    layer(torch.zeros(1, 4))
    assert torch.get_num_threads() == 1
