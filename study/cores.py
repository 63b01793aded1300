"""The machine's cores shared among the foreground trials (`hiddenlab train`) running on it.

Each trial used to take every core. Two side by side on 2 cores then ran 4 OpenMP threads: a
thread waiting at a barrier for its sibling, descheduled to make room for the other trial,
spins through its time slice, and every parallel operation of both trials pays for it (epochs
10-18x slower than alone). With n trials on c cores each now uses max(1, c // n) threads; one
thread runs an operation inline, without a barrier.

The trials find each other through a folder of one file per running trial (its pid and start
time, so a recycled pid is not mistaken for it). The share is recomputed at most once a
second, from a global module forward hook (in the main thread, where torch's thread count
lives): a trial that starts or ends changes the others' share within about a second.
A trial given `--threads` keeps that number. Ray trials do not take part: Ray gives each its
CPUs (`--cpus-per-trial`).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

RECHECK_S = 1.0


def machine_cores() -> int:
    """The cores this process may run on (a taskset or cpuset counts, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    the share while the trial runs. `fixed` (a --threads value) opts out of sharing."""

    def __init__(self, fixed: int | None = None, folder: Path | None = None):
        self.fixed = fixed
        self.folder = folder or registry()
        self.me = self.folder / str(os.getpid())
        self.threads = fixed or machine_cores()
        self._checked = 0.0
        self._hook = None

    def __enter__(self) -> "CoreShare":
        if self.fixed is None:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                self.me.write_text(_start_time(os.getpid()) or "?")
            except OSError:  # no writable temp folder: every core, as before
                return self
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
        return self.fixed or max(1, machine_cores() // self.running())

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
