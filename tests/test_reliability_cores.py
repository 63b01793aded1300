"""Foreground trials share the machine's cores (hiddenlab.study.cores): alone on an idle machine a
trial takes every core; with other trials, or other load, it takes what is left, and its torch
thread count follows as they start and end. (The timing this buys: benchmarks/side_by_side.py.)
The load is a fake /proc here, so the tests do not depend on what else runs on the machine."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from hiddenlab.study import cores
from hiddenlab.study.cores import CoreShare, LoadMeter, _cpus, _start_time


class Load:
    """A fake /proc reading: each one a second after the last, `others` cores kept busy by other
    processes, none by this one."""

    def __init__(self, others: float = 0.0):
        self.others, self.busy, self.total = others, 0, 0

    def __call__(self, cpus):
        self.busy += round(100 * self.others)
        self.total += 100 * len(cpus)
        return self.busy, self.total, 0


@pytest.fixture(autouse=True)
def _no_first_look(monkeypatch):
    monkeypatch.setattr(cores, "FIRST_LOOK_S", 0.0)


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
    with CoreShare(folder=tmp_path, read=Load()) as share:
        assert share.threads == 4
        assert (tmp_path / str(os.getpid())).exists()
    assert list(tmp_path.iterdir()) == []


def test_two_trials_take_half_each(tmp_path, four_cores, other_trial):
    with CoreShare(folder=tmp_path, read=Load()) as share:
        assert share.threads == 2 and share.running() == 2


def test_more_trials_than_cores_take_one_thread_each(tmp_path, monkeypatch, other_trial):
    monkeypatch.setattr(cores, "machine_cores", lambda: 1)
    with CoreShare(folder=tmp_path, read=Load()) as share:
        assert share.threads == 1


def test_dead_and_recycled_pids_do_not_count(tmp_path, four_cores):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / str(dead.pid)).write_text("1")
    (tmp_path / str(os.getppid())).write_text("0")   # alive, but not the process that wrote it
    with CoreShare(folder=tmp_path, read=Load()) as share:
        assert share.threads == 4
    assert list(tmp_path.iterdir()) == []   # both stale entries removed


def test_given_threads_opt_out(tmp_path, four_cores, other_trial):
    with CoreShare(fixed=3, folder=tmp_path, read=Load()) as share:
        assert share.threads == 3
        assert not (tmp_path / str(os.getpid())).exists()   # not counted by the others


def test_other_load_leaves_fewer_threads(tmp_path, four_cores):
    for busy, threads in ((0.4, 4), (1.2, 3), (2.6, 1), (3.9, 1)):
        with CoreShare(folder=tmp_path, read=Load(busy)) as share:
            assert share.threads == threads, busy


def test_the_meter_reads_this_machine():
    meter = LoadMeter(_cpus())
    x = sum(i * i for i in range(300_000))   # some time of this process's own, not counted
    others = meter.others()
    assert x and (others is None or 0 <= others <= len(_cpus()) + 0.5)


def test_thread_count_follows_trials_and_load(tmp_path, four_cores, monkeypatch):
    monkeypatch.setattr(cores, "RECHECK_S", 0.0)
    layer = torch.nn.Linear(4, 4)
    load = Load()
    with CoreShare(folder=tmp_path, read=load) as share:
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
        load.others = 3.0                  # a build starts on three of the four cores
        layer(torch.zeros(1, 4))
        assert torch.get_num_threads() == 1
        load.others = 0.0
        layer(torch.zeros(1, 4))
        assert torch.get_num_threads() == 4
    layer(torch.zeros(1, 4))           # the hook is gone with the trial
    torch.set_num_threads(1)
    layer(torch.zeros(1, 4))
    assert torch.get_num_threads() == 1
