"""benchmarks/gpu_check.sh in its tiny CPU mode (so the GPU check cannot rot), and hiddenlab's
training code importable with only PyTorch and torchvision (what the GPU machine has)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OPTIONAL = ("ray", "ffcv", "pyarrow", "pandas", "seaborn", "matplotlib", "sklearn", "tqdm")

BLOCKER = f"""
import builtins, sys
real = builtins.__import__
def guarded(name, *a, **k):
    if name.split(".")[0] in {OPTIONAL!r}:
        raise ImportError("not installed here: " + name)
    return real(name, *a, **k)
builtins.__import__ = guarded
import hiddenlab
from hiddenlab.study.packing import Pack, run_pack
from hiddenlab.study.trainer import run_trial
from hiddenlab.config import TrialConfig
TrialConfig(method="slot-gs", K=4, model="conv6")
print("ok")
"""


def test_hiddenlab_imports_without_ray_ffcv_pandas_pyarrow():
    out = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


@pytest.mark.timeout(900)
def test_gpu_check_quick_mode_runs_and_writes_its_section(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text((REPO / "benchmarks" / "RESULTS.md").read_text())
    env = dict(os.environ, PYTHON=sys.executable)
    out = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--quick",
                          "--json", str(tmp_path / "r.json"), "--results-md", str(results)],
                         capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["mode"] == "quick" and r["optional_imported"] == []
    methods = {(row["model"], row["method"]) for row in r["step"]}
    assert methods == {(m, x) for m in ("conv6", "resnet50")
                       for x in ("dense", "edgepopup", "supermask", "slot-gs", "slot-ps")}
    assert all(row["ms_per_step"] > 0 for row in r["step"])
    modes = {(row["model"], row["method"], row["members"], row["mode"]) for row in r["packing"]}
    for model in ("conv6", "lenet-300-100"):
        for n in (1, 2):
            assert (model, "edgepopup", n, "packed") in modes
            assert (model, "dense", n, "vmap") in modes
    text = results.read_text()
    assert text.count("<!-- gpu-check:start -->") == 1 and "quick mode" in text
    # the section is replaced, not appended, when written again from the JSON
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_check

    gpu_check.main(["--write-section", str(tmp_path / "r.json"), "--results-md", str(results)])
    assert results.read_text() == text
