"""`data prepare --format ffcv` when a writer process fails: the command ends with the error (it
used to wait forever), the other writer processes are stopped, and nothing is left behind: no
temporary file, no folder made for the file, no shared memory segment."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ffcv")

from hiddenlab.data import DataError  # noqa: E402
from hiddenlab.data.ffcv_files import BetonOptions, check_beton, write_beton  # noqa: E402

SHM = Path("/dev/shm")


class Images:
    """64 RGB 8x8 images; reading image `bad` fails with `how` (in the writer process)."""

    def __init__(self, bad: int | None = None, how: str = "raise"):
        self.bad, self.how = bad, how

    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int):
        if i == self.bad:
            if self.how == "exit":
                os._exit(3)   # a writer process that dies without a word (OOM killer, segfault)
            raise ValueError(f"image {i} is corrupt")
        rng = np.random.default_rng(i)
        return rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), i % 10


def shared_memory() -> set[str]:
    return {p.name for p in SHM.glob("psm_*")} if SHM.is_dir() else set()


@pytest.mark.parametrize("how", ["raise", "exit"])
def test_failing_writer_ends_with_the_error_and_leaves_nothing(tmp_path, how):
    path = tmp_path / "new" / "folder" / "train.beton"
    segments = shared_memory()
    t0 = time.time()
    with pytest.raises(DataError) as e:
        write_beton(Images(bad=40, how=how), path, num_workers=2, chunksize=8)
    assert time.time() - t0 < 60            # it ended (it used to wait forever)
    message = str(e.value)
    assert str(path) in message
    assert ("ValueError: image 40 is corrupt" in message if how == "raise"
            else "exit code 3" in message)
    assert list(tmp_path.iterdir()) == []   # no .tmp file, and the folders it made are gone
    assert shared_memory() <= segments      # FFCV's metadata segment unlinked
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]


def test_a_bad_option_fails_in_the_writer_and_is_reported(tmp_path):
    """A negative max side reaches FFCV's resize in the writer processes (the CLI refuses it
    before; this is the writer's own guard)."""
    path = tmp_path / "train.beton"
    with pytest.raises(DataError, match="failed in a writer process"):
        write_beton(Images(), path, BetonOptions(max_side=-5), num_workers=2, chunksize=8)
    assert list(tmp_path.iterdir()) == []


def test_supervised_writer_still_writes_whole_files(tmp_path):
    path = tmp_path / "train.beton"
    write_beton(Images(), path, num_workers=2, chunksize=8)
    assert int(check_beton(path).num_samples) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["train.beton"]
