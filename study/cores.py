"""The machine's cores shared among the foreground trials (`hiddenlab train`) running on it, and
left to what else keeps them busy.

Each trial used to take every core. Two side by side on 2 cores then ran 4 OpenMP threads: a
thread waiting at a barrier for its sibling, descheduled to make room for the other trial,
spins through its time slice, and every parallel operation of both trials pays for it (epochs
10-18x slower than alone). The same happens to a single trial on cores other programs keep busy
(a local Ray study, a build). Now a trial uses

    max(1, min(cores // trials, free cores))

threads: `trials` the foreground trials running (found through a folder of one file per
running trial: its pid and start time, so a recycled pid is not mistaken for it), `free cores`
the cores minus those other processes kept busy over the last second (/proc/stat, less this
process's own time). One thread runs an operation inline, without a barrier; alone on an idle
machine a trial still gets every core.

The share is recomputed at most once a second, from a global module forward hook (in the main
thread, where torch's thread count lives): a trial or a load that starts or ends changes it
within about a second. A trial given `--threads` keeps that number. Ray trials do not take part:
Ray gives each its CPUs (`--cpus-per-trial`).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

RECHECK_S = 1.0      # how often a running trial looks again
FIRST_LOOK_S = 0.3   # how long a starting trial watches the load first


def machine_cores() -> int:
    """The cores this process may run on (a taskset or cpuset counts, not the machine's)."""
    return len(_cpus())


def _cpus() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


def read_proc(cpus: set[int]) -> tuple[int, int, int] | None:
    """(busy, all, this process's own) clock ticks since boot of `cpus`, from /proc (None
    where there is no /proc)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, *ticks = line.split()
        if name[:3] == "cpu" and name[3:].isdigit() and int(name[3:]) in cpus:
            t = [int(x) for x in ticks[:8]]   # user nice system idle iowait irq softirq steal
            busy, total = busy + sum(t) - t[3] - t[4], total + sum(t)
    return busy, total, int(own[11]) + int(own[12])   # utime + stime


class LoadMeter:
    """Cores kept busy by other processes between two calls of `others`."""

    def __init__(self, cpus: set[int], read=read_proc):
        self.cpus, self.read = cpus, read
        self.last = read(cpus)

    def others(self) -> float | None:
        now = self.read(self.cpus)
        last, self.last = self.last, now
        if now is None or last is None or now[1] <= last[1]:
            return None
        elapsed = (now[1] - last[1]) / len(self.cpus)   # ticks per core
        return max(0.0, ((now[0] - last[0]) - (now[2] - last[2])) / elapsed)


def registry() -> Path:
    return Path(tempfile.gettempdir()) / f"hiddenlab-{os.getuid()}" / "trials"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (None when it is not running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]   # field 22: starttime
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"   # no /proc: alive, start time unknown


class CoreShare:
    """`with CoreShare() as share:` registers this process as a running foreground trial;
    `share.threads` is its share of the cores; `share.follow()` keeps torch's thread count at
    the share while the trial runs. `fixed` (a --threads value) opts out of sharing. `read`:
    where the load comes from (/proc)."""

    def __init__(self, fixed: int | None = None, folder: Path | None = None, read=read_proc):
        self.fixed, self.read = fixed, read
        self.folder = folder or registry()
        self.me = self.folder / str(os.getpid())
        self.threads = fixed or machine_cores()
        self.meter: LoadMeter | None = None
        self._checked = 0.0
        self._hook = None

    def __enter__(self) -> "CoreShare":
        if self.fixed is None:
            self.meter = LoadMeter(_cpus(), self.read)
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                self.me.write_text(_start_time(os.getpid()) or "?")
            except OSError:  # no writable temp folder: no sharing with other trials
                pass
            time.sleep(FIRST_LOOK_S)   # the load meter's first window
            self.threads = self.share()
        return self

    def __exit__(self, *exc) -> None:
        if self._hook is not None:
            self._hook.remove()
        self.me.unlink(missing_ok=True)

    def running(self) -> int:
        """Foreground trials running now (this one included); removes entries of dead ones."""
        n = 0
        for entry in self.folder.glob("[0-9]*"):
            try:
                recorded = entry.read_text().strip()
            except OSError:
                continue
            alive = _start_time(int(entry.name))
            if alive is not None and (recorded in ("?", alive) or alive == "?"):
                n += 1
            else:
                entry.unlink(missing_ok=True)
        return max(n, 1)

    def share(self) -> int:
        if self.fixed:
            return self.fixed
        cores = machine_cores()
        threads = cores // (self.running() if self.me.exists() else 1)
        others = self.meter.others() if self.meter is not None else None
        if others is not None:
            threads = min(threads, int(cores - others + 0.5))   # free cores, rounded
        return max(1, threads)

    def follow(self) -> None:
        """Re-check the share at most once a second, before a module's forward pass."""
        import torch

        if self.fixed is not None:
            return

        def recheck(module, inputs) -> None:
            now = time.monotonic()
            if now - self._checked < RECHECK_S:
                return
            self._checked = now
            threads = self.share()
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
                self.threads = threads

        self._hook = torch.nn.modules.module.register_module_forward_pre_hook(recheck)
