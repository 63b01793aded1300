"""Reporters the trainer tests share (tests/ is on sys.path: pytest's rootdir-less test folder)."""

from hiddenlab.study.trainer import LocalReporter


class Killed(Exception):
    pass


class KillAfter(LocalReporter):
    """Dies right after the checkpoint of epoch `n` is on disk, as a kill there would."""

    def __init__(self, out, n):
        super().__init__(out, progress=False)
        self.n = n

    def report(self, metrics, state, artifacts):
        super().report(metrics, state, artifacts)
        if metrics["epoch"] == self.n:
            raise Killed
