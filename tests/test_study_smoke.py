"""Every study at the `smoke` scale on a real embedded Ray (2 CPUs): every trial completes and the
results table has one row per trial x epoch. Slow (all of them: several minutes on 2 cores)."""

from __future__ import annotations

import json
import sys
import time

import pytest

from hiddenlab.study import export
from hiddenlab.study.registry import get_study, studies
from hiddenlab.study.runner import RunOptions, run_study

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_timings(ray_session):
    yield
    if TIMINGS:
        print("\nsmoke study wall times (s): " + json.dumps(TIMINGS), file=sys.stderr)
        print(f"all smoke studies: {sum(TIMINGS.values()):.0f} s", file=sys.stderr)


@pytest.mark.parametrize("name", list(studies()))
def test_smoke_study(name, ray_session, tmp_path):
    plan = get_study(name).plan("smoke", parent_dir=lambda rid: str(
        tmp_path / name / "checkpoints" / rid))
    t0 = time.time()
    summary = run_study(name, RunOptions(scale="smoke", storage=str(tmp_path), verbose=0,
                                         figures=False))
    TIMINGS[name] = round(time.time() - t0, 1)
    assert summary.counts == {"TERMINATED": len(plan)}, summary.counts
    df = export.load(str(tmp_path), name)
    assert set(df.run_id) == {t.run_id for t in plan.trials}
    assert not df.duplicated(["run_id", "epoch"]).any()
    want = {t.run_id: t.cfg.epochs for t in plan.trials}
    got = df.groupby("run_id").epoch.max().to_dict()
    assert got == want
    assert len(df) == sum(want.values())
    assert df.test_acc.notna().sum() == len(plan)
