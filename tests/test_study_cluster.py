"""A 2-node Ray cluster on loopback: a smoke study joins it (`--address`), the worker node is
killed mid-study (its whole process tree), and every trial still completes exactly once
(FailureConfig(max_failures) + per-epoch checkpoints). Only processes this test started are
killed (each node runs `ray start --block` in its own process group)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hiddenlab.study import export
from hiddenlab.study.registry import get_study

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(1200)]

STUDY = "sm-related"
EPOCHS = 8
RAY = str(Path(sys.executable).with_name("ray"))
# Notice a dead node within seconds, not the default ~30 s.
ENV = dict(os.environ, RAY_health_check_period_ms="1000", RAY_health_check_timeout_ms="1000",
           RAY_health_check_failure_threshold="3", RAY_USAGE_STATS_ENABLED="0",
           RAY_AUTH_MODE="disabled")   # a throwaway loopback cluster: no token to share


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([RAY, "start", "--block", "--num-cpus=1", "--num-gpus=0",
                             "--object-store-memory=80000000", "--node-ip-address=127.0.0.1",
                             *args], start_new_session=True, env=ENV,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def alive_nodes(address: str) -> int:
    code = ("import ray; ray.init(address=%r, logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))" % address)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV,
                       timeout=120)
    return int(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() \
        else 0


def kill_group(proc: subprocess.Popen | None, sig=signal.SIGKILL) -> None:
    if proc is None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def on_node(pid: int, pgid: int) -> bool:
    """Ray worker processes get their own process group; their parent is the node's raylet."""
    try:
        return os.getpgid(pid) == pgid or os.getpgid(parent(pid)) == pgid
    except (ProcessLookupError, FileNotFoundError, ValueError):
        return False


def tree(pgid: int) -> list[int]:
    """Every process of the node: its process group and the children of those (Ray workers)."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                procs[int(d)] = (os.getpgid(int(d)), parent(int(d)))
            except (ProcessLookupError, FileNotFoundError, ValueError, PermissionError):
                pass
    members = {p for p, (g, _) in procs.items() if g == pgid}
    grew = True
    while grew:
        new = {p for p, (_, pp) in procs.items() if pp in members} - members
        members |= new
        grew = bool(new)
    return sorted(members)


def kill_node(proc: subprocess.Popen) -> None:
    """The whole node at once: raylet, agents and the Ray workers running trials."""
    for pid in tree(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)


def running_on(storage: Path, pgid: int) -> list[str]:
    """Trials that reported an epoch, are not done, and run in a process of group `pgid`."""
    found = []
    for path in (storage / STUDY / "tune").glob("*/*/result.json"):
        try:
            rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
        except (OSError, json.JSONDecodeError):
            continue
        if rows and not any(r.get("done") for r in rows) and \
                on_node(int(rows[-1].get("pid", -1)), pgid):
            found.append(path.parent.name)
    return found


def test_worker_node_killed_mid_study(tmp_path):
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp_dir = tempfile.mkdtemp(prefix="hlray-", dir="/tmp")   # short: unix socket paths
    head = worker = driver = None
    storage = tmp_path / "store"
    try:
        head = start_node(["--head", f"--port={port}", "--include-dashboard=false",
                           f"--temp-dir={temp_dir}"], tmp_path / "head.log")
        worker = start_node([f"--address={address}"], tmp_path / "worker.log")
        deadline = time.time() + 180
        while alive_nodes(address) < 2:
            assert time.time() < deadline, (tmp_path / "worker.log").read_text()[-2000:]
            assert head.poll() is None, (tmp_path / "head.log").read_text()[-2000:]
            time.sleep(2)

        driver = subprocess.Popen(
            [sys.executable, "-m", "hiddenlab", "study", "run", STUDY, "--scale", "smoke",
             "--storage", str(storage), "--address", address, "--set", f"epochs={EPOCHS}",
             "--max-failures", "3", "--quiet", "--no-figures"],
            start_new_session=True, env=ENV, stdout=(tmp_path / "driver.log").open("w"),
            stderr=subprocess.STDOUT)
        deadline = time.time() + 400
        victims: list[str] = []
        while not victims:
            assert time.time() < deadline, "no trial ran on the worker node"
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            victims = running_on(storage, worker.pid)
            time.sleep(0.1)
        kill_node(worker)            # raylet, its workers and agents: the node is gone
        worker = None
        rc = driver.wait(timeout=900)
        assert rc == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        kill_group(driver)
        if worker is not None:
            kill_node(worker)
        if head is not None:
            kill_node(head)
        shutil.rmtree(temp_dir, ignore_errors=True)

    plan = get_study(STUDY).plan("smoke", overrides={"epochs": EPOCHS})
    df = export.load(str(storage), STUDY)
    assert set(df.run_id) == {t.run_id for t in plan.trials}
    assert (df.status == "TERMINATED").all()
    assert not df.duplicated(["run_id", "epoch"]).any()           # none doubled
    assert len(df) == EPOCHS * len(plan)                          # none lost
    assert df.groupby("run_id").epoch.apply(sorted).map(list).eq(
        [list(range(1, EPOCHS + 1))] * df.run_id.nunique()).all()
    failures = df.drop_duplicates("run_id").set_index("run_id").num_failures
    assert failures[victims].min() >= 1, failures[victims]   # they were hit, then recovered
