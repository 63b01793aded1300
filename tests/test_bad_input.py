"""The README's promise, case by case: bad input is refused before anything runs or is written.

Every case is a command line over `train`, `study`, `data` or `analysis` (with what its
surroundings hold: a corrupt checkpoint, a file where a folder belongs) and the field or file its
message must name. Each asserts: exit code 2; one line of error, `hiddenlab ...: error: ...`,
that names it; no traceback; nothing written in the case's folder (its listing before and after;
the data root and the working directory live there too); Ray never started; and that it ended in
seconds (the bound is far above a refusal and far below any training or a network retry: it
catches hangs and late detection, it does not benchmark).

Most cases call `hiddenlab.cli.main` in this process: the same code path as the command without
a 4 s interpreter start per case. The few whose failure could only show as a hang or a crash of
another process (a cluster address, the FFCV writer's workers, the installed entry point) run the
command as a subprocess.

Outside pytest, `python tests/test_bad_input.py --audit [--jobs N] [--timeout S]` runs every case
as its own process with a timeout and counts the outcomes: refused (as promised), refused late
(slow, or after writing), traceback, hang, accepted (exit 0), other exit. Issue 13's numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

MAX_SECONDS = 60          # "seconds, not minutes": a refusal takes < 5 s even on a loaded CPU
UNWRITABLE = "/proc/hiddenlab-unwritable"   # not creatable even by root


# --- what a case's folder holds --------------------------------------------------------------------
def scaffold(root: Path) -> None:
    """Every case's folder: an empty data root, a working directory, a plain file."""
    (root / "data").mkdir()
    (root / "work").mkdir()
    (root / "file.txt").write_text("a file, not a folder\n")


def corrupt(name: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x80\x04 not a pickle, not parquet: a file cut short")
    return setup


def parent_at_epoch(epoch: int) -> Callable[[Path], None]:
    """A finetune parent directory whose only checkpoint is of `epoch`."""
    def setup(root: Path) -> None:
        import torch

        from hiddenlab.config import TrialConfig

        (root / "parent").mkdir()
        cfg = TrialConfig(method="slot-gs", model="fc", dataset="digits", epochs=3)
        torch.save({"epoch": epoch, "config": cfg.to_dict()}, root / "parent" / "checkpoint.pt")
    return setup


def another_trial(root: Path) -> None:
    from hiddenlab.config import TrialConfig

    (root / "run").mkdir()
    (root / "run" / "config.json").write_text(json.dumps(TrialConfig(method="dense").to_dict()))


def columnless_parquet(root: Path) -> None:
    import pandas as pd

    (root / "results" / "quickstart").mkdir(parents=True)
    pd.DataFrame({"x": [1, 2]}).to_parquet(root / "results" / "quickstart" / "results.parquet")


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        for s in setups:
            s(root)
    return setup


# --- the cases -------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    argv: list[str]        # {tmp}: the case's folder, {data}: its data root
    names: str             # what the error line must name (a field, a file, a value)
    setup: Callable[[Path], None] | None = None
    subprocess: bool = False
    env: dict[str, str] = field(default_factory=dict)
    needs_no_cuda: bool = False   # refused only where no CUDA device is visible


TRAIN = ["train", "--dataset", "digits", "--model", "fc", "--width-mult", "0.25", "--epochs", "3",
         "--subset", "256", "--num-workers", "0", "--device", "cpu", "--no-progress"]
SLOT = TRAIN + ["--method", "slot-gs"]
STUDY = ["study", "run", "quickstart", "--scale", "smoke", "--storage", "{tmp}/results",
         "--quiet", "--no-figures", "--num-cpus", "2"]
CIFAR_STUDY = ["study", "run", "ep-fig3", "--scale", "paper"] + STUDY[5:]   # CIFAR-10
PREP = ["data", "prepare", "digits", "--format", "ffcv"]            # grey images
RGB_PREP = ["data", "prepare", "synthetic", "--format", "ffcv", "--synthetic-size", "64"]
FIGS = ["analysis", "figures", "--results", "{tmp}/results", "--out", "{tmp}/figures"]


def T(id, extra, names, **kw):
    return Case("train-" + id, TRAIN + extra, names, **kw)


def S(id, extra, names, base=STUDY, **kw):
    return Case("study-" + id, base + extra, names, **kw)


CASES: list[Case] = [
    Case("no-command", [], "COMMAND"),
    Case("unknown-command", ["trian"], "trian"),
    # --- train: one field out of its range --------------------------------------------------------
    T("lr-nan", ["--lr", "nan"], "lr"),
    T("lr-inf", ["--lr", "inf"], "lr"),
    T("lr-negative", ["--lr", "-0.1"], "lr"),
    T("lr-zero", ["--lr", "0"], "lr"),
    T("lr-huge", ["--lr", "1e7"], "lr"),
    T("lr-text", ["--lr", "fast"], "lr"),
    T("momentum-negative", ["--momentum", "-1"], "momentum"),
    T("momentum-one", ["--momentum", "1"], "momentum"),
    T("weight-decay-negative", ["--weight-decay", "-0.1"], "weight_decay"),
    T("weight-decay-nan", ["--weight-decay", "nan"], "weight_decay"),
    T("num-workers-negative", ["--num-workers", "-1"], "num_workers"),
    T("epochs-zero", ["--epochs", "0"], "epochs"),
    T("epochs-fraction", ["--epochs", "2.5"], "epochs"),
    T("batch-size-zero", ["--batch-size", "0"], "batch_size"),
    T("eval-batch-size-zero", ["--eval-batch-size", "0"], "eval_batch_size"),
    T("k-zero", ["--k", "0"], "k"),
    T("k-above-one", ["--k", "1.5"], "k"),
    T("k-nan", ["--k", "nan"], "k"),
    T("width-zero", ["--width-mult", "0"], "width_mult"),
    T("width-inf", ["--width-mult", "inf"], "width_mult"),
    T("dropout-one", ["--dropout", "1"], "dropout"),
    T("seed-negative", ["--seed", "-1"], "seed"),
    T("subset-zero", ["--subset", "0"], "subset"),
    T("val-size-zero", ["--val-size", "0"], "val_size"),
    T("gamma-zero", ["--gamma", "0"], "gamma"),
    T("label-smoothing-one", ["--label-smoothing", "1"], "label_smoothing"),
    T("threads-zero", ["--threads", "0"], "threads"),
    T("recalibrate-batches-zero", ["--recalibrate-batches", "0"], "recalibrate_batches"),
    T("synthetic-shape-two-values", ["--dataset", "synthetic", "--synthetic-shape", "3", "32"],
      "synthetic_shape"),
    T("synthetic-shape-zero", ["--dataset", "synthetic", "--synthetic-shape", "0", "8", "8"],
      "synthetic_shape"),
    T("synthetic-classes-one", ["--dataset", "synthetic", "--synthetic-classes", "1"],
      "synthetic_classes"),
    # --- train: names that are not registered -----------------------------------------------------
    T("method-unknown", ["--method", "nosuch"], "method"),
    T("model-unknown", ["--model", "nosuch"], "model"),
    T("dataset-unknown", ["--dataset", "nosuch"], "dataset"),
    T("loader-unknown", ["--loader", "nosuch"], "loader"),
    T("init-unknown", ["--init", "nosuch"], "init"),
    T("precision-unknown", ["--precision", "fp16"], "precision"),
    T("schedule-unknown", ["--schedule", "linear"], "schedule"),
    # --- train: fields that depend on each other --------------------------------------------------
    Case("train-K-one", SLOT + ["--K", "1"], "K"),
    Case("train-K-zero", SLOT + ["--K", "0"], "K"),
    T("K-for-edgepopup", ["--K", "4"], "K"),
    T("k-for-dense", ["--method", "dense", "--k", "0.5"], "k"),
    T("keep-epochs-beyond-last", ["--keep-epochs", "99"], "keep_epochs"),
    T("keep-epochs-zero", ["--keep-epochs", "0"], "keep_epochs"),
    T("parent-epoch-without-parent", ["--parent-epoch", "3"], "parent_epoch"),
    T("finetune-without-parent", ["--method", "finetune"], "parent"),
    T("sgdr-restart-beyond-last", ["--schedule", "sgdr", "--restarts", "5"], "restarts"),
    T("sgdr-restart-at-last", ["--schedule", "sgdr", "--restarts", "3"], "restarts"),
    T("milestone-beyond-last", ["--schedule", "multistep", "--milestones", "4"], "milestones"),
    T("milestone-negative", ["--schedule", "multistep", "--milestones", "-1"], "milestones"),
    T("warmup-negative", ["--schedule", "cosine", "--warmup-epochs", "-1"], "warmup_epochs"),
    T("warmup-beyond-last", ["--schedule", "cosine", "--warmup-epochs", "3"], "warmup_epochs"),
    T("restarts-without-sgdr", ["--schedule", "cosine", "--restarts", "1"], "restarts"),
    T("warmup-without-cosine", ["--schedule", "constant", "--warmup-epochs", "1"],
      "warmup_epochs"),
    T("depth-odd", ["--model", "conv2", "--depth", "3"], "depth"),
    T("depth-for-fc", ["--depth", "4"], "depth"),
    T("device-cuda-without-gpu", ["--device", "cuda"], "device", needs_no_cuda=True),
    # --- train: files and folders -----------------------------------------------------------------
    T("parent-missing", ["--method", "finetune", "--parent", "{tmp}/nope"], "nope"),
    T("parent-corrupt", ["--method", "finetune", "--parent", "{tmp}/bad.pt"], "bad.pt",
      setup=corrupt("bad.pt")),
    T("parent-epoch-not-kept", ["--method", "finetune", "--parent", "{tmp}/parent",
                                "--parent-epoch", "2"], "parent", setup=parent_at_epoch(3)),
    T("out-is-a-file", ["--out", "{tmp}/file.txt"], "file.txt"),
    T("out-under-a-file", ["--out", "{tmp}/file.txt/run"], "file.txt"),
    T("out-unwritable", ["--out", UNWRITABLE], UNWRITABLE),
    T("out-holds-another-trial", ["--out", "{tmp}/run"], "out", setup=another_trial),
    T("out-config-corrupt", ["--out", "{tmp}/run"], "config.json",
      setup=corrupt("run/config.json")),
    T("out-checkpoint-corrupt", ["--out", "{tmp}/run"], "checkpoint.pt",
      setup=corrupt("run/checkpoint.pt")),
    T("data-missing-offline", ["--dataset", "mnist", "--model", "fc"], "mnist"),
    T("imagenet-folder-missing", ["--dataset", "imagenet", "--model", "resnet18",
                                  "--loader", "torchvision"], "imagenet"),
    T("imagenet-gpu-loader", ["--dataset", "imagenet", "--model", "resnet18", "--loader", "gpu"],
      "loader"),
    T("ffcv-files-missing", ["--dataset", "fashion-mnist", "--loader", "ffcv"],
      "fashion-mnist"),
    T("data-root-is-a-file", ["--dataset", "mnist", "--data-root", "{tmp}/file.txt"],
      "file.txt"),
    T("val-size-beyond-data", ["--val-size", "5000"], "val_size"),
    # --- study run: options ---------------------------------------------------------------------
    S("unknown", [], "nosuch", base=["study", "run", "nosuch"]),
    S("scale-unknown", ["--scale", "huge"], "scale", base=STUDY[:3] + STUDY[5:]),
    S("seeds-zero", ["--seeds", "0"], "seeds"),
    S("seeds-text", ["--seeds", "three"], "seeds"),
    S("cpus-negative", ["--cpus-per-trial", "-1"], "cpus_per_trial"),
    S("cpus-nan", ["--cpus-per-trial", "nan"], "cpus_per_trial"),
    S("gpus-fraction-above-one", ["--gpus-per-trial", "1.5"], "gpus_per_trial"),
    S("gpus-without-gpu", ["--gpus-per-trial", "1"], "gpus_per_trial", needs_no_cuda=True),
    S("max-concurrent-zero", ["--max-concurrent", "0"], "max_concurrent"),
    S("max-failures-negative", ["--max-failures", "-2"], "max_failures"),
    S("num-cpus-zero", ["--num-cpus", "0"], "num_cpus"),
    S("num-cpus-with-address", ["--address", "127.0.0.1:6379"], "num_cpus"),
    S("address-garbage", ["--address", "not an address"], "address", base=STUDY[:-2]),
    S("address-port-range", ["--address", "127.0.0.1:99999"], "address", base=STUDY[:-2]),
    S("address-nothing-listening", ["--address", "127.0.0.1:1"], "127.0.0.1:1",
      base=STUDY[:-2], subprocess=True),
    S("address-ray-client", ["--address", "ray://127.0.0.1:1"], "address", base=STUDY[:-2],
      subprocess=True),
    # --- study run: --set ------------------------------------------------------------------------
    S("set-lr-nan", ["--set", "lr=nan"], "lr"),
    S("set-unknown-field", ["--set", "nosuch=1"], "nosuch"),
    S("set-without-equals", ["--set", "lr"], "set"),
    S("set-epochs-zero", ["--set", "epochs=0"], "epochs"),
    S("set-K-one", ["--set", "K=1"], "K"),
    S("set-K-text", ["--set", "K=many"], "K"),
    S("set-option-no-trial-takes", ["--set", "K=4"], "K", base=CIFAR_STUDY),
    S("set-parent-epoch-no-finetune", ["--set", "parent_epoch=3"], "parent_epoch",
      base=CIFAR_STUDY),
    S("set-milestones-beyond-last", ["--set", "schedule=multistep", "--set", "milestones=50"],
      "milestones"),
    S("set-keep-epochs-beyond-last", ["--set", "keep_epochs=99"], "keep_epochs"),
    S("set-seed", ["--set", "seed=3"], "seed"),
    S("set-threads-zero", ["--set", "threads=0"], "threads"),
    S("set-momentum-negative", ["--set", "momentum=-1"], "momentum"),
    S("set-num-workers-negative", ["--set", "num_workers=-1"], "num_workers"),
    # --- study run: files, folders, data ---------------------------------------------------------
    S("storage-is-a-file", ["--storage", "{tmp}/file.txt"], "file.txt"),
    S("storage-under-a-file", ["--storage", "{tmp}/file.txt/results"], "file.txt"),
    S("storage-unwritable", ["--storage", UNWRITABLE], UNWRITABLE),
    S("data-missing", [], "cifar10", base=CIFAR_STUDY),
    S("set-data-root-file", ["--set", "data_root={tmp}/file.txt"], "file.txt",
      base=CIFAR_STUDY),
    S("set-dataset-missing", ["--set", "dataset=mnist"], "mnist"),
    # --- study show / export ---------------------------------------------------------------------
    Case("study-show-unknown", ["study", "show", "nosuch"], "nosuch"),
    Case("study-show-seeds-zero", ["study", "show", "quickstart", "--storage", "{tmp}/results",
                                   "--seeds", "0"], "seeds"),
    Case("study-show-storage-missing", ["study", "show", "quickstart", "--storage",
                                        "{tmp}/nope"], "nope"),
    Case("study-export-unknown", ["study", "export", "nosuch"], "nosuch"),
    Case("study-export-storage-missing", ["study", "export", "quickstart", "--storage",
                                          "{tmp}/nope"], "nope"),
    # --- data ------------------------------------------------------------------------------------
    Case("data-unknown-dataset", ["data", "prepare", "nosuch"], "nosuch"),
    Case("data-unknown-format", ["data", "prepare", "digits", "--format", "zip"], "format"),
    Case("data-max-side-negative", PREP + ["--max-side", "-5"], "max_side"),
    Case("data-max-side-negative-process", PREP + ["--max-side", "-5"], "max_side",
         subprocess=True),
    Case("data-max-side-zero", PREP + ["--max-side", "0"], "max_side"),
    Case("data-max-side-negative-rgb", RGB_PREP + ["--max-side", "-5"], "max_side"),
    Case("data-max-side-negative-rgb-process", RGB_PREP + ["--max-side", "-5"], "max_side",
         subprocess=True),
    Case("data-max-side-of-grey-images", PREP + ["--max-side", "16"], "max_side"),
    Case("data-quality-without-jpeg", RGB_PREP + ["--quality", "80"], "quality"),
    Case("data-ffcv-option-for-torchvision", ["data", "prepare", "digits", "--format",
                                              "torchvision", "--max-side", "16"], "max_side"),
    Case("data-workers-zero", PREP + ["--workers", "0"], "workers"),
    Case("data-workers-negative", PREP + ["--workers", "-1"], "workers"),
    Case("data-quality-zero", PREP + ["--quality", "0"], "quality"),
    Case("data-quality-above-100", PREP + ["--quality", "101"], "quality"),
    Case("data-jpeg-fraction-above-one", PREP + ["--jpeg-fraction", "1.5"], "jpeg_fraction"),
    Case("data-jpeg-fraction-nan", PREP + ["--jpeg-fraction", "nan"], "jpeg_fraction"),
    Case("data-jpeg-of-grey-images", PREP + ["--jpeg-fraction", "0.5"], "jpeg_fraction"),
    Case("data-mnist-offline", ["data", "prepare", "mnist", "--format", "torchvision"], "mnist"),
    Case("data-imagenet-missing", ["data", "prepare", "imagenet"], "imagenet"),
    Case("data-root-is-a-file", PREP + ["--data-root", "{tmp}/file.txt"], "file.txt"),
    Case("data-root-unwritable", PREP + ["--data-root", UNWRITABLE], UNWRITABLE),
    Case("data-synthetic-classes-one", ["data", "prepare", "synthetic", "--synthetic-classes",
                                        "1"], "synthetic_classes"),
    Case("data-synthetic-shape-zero", ["data", "prepare", "synthetic", "--synthetic-shape",
                                       "0", "8", "8"], "synthetic_shape"),
    Case("data-synthetic-size-one", ["data", "prepare", "synthetic", "--synthetic-size", "1"],
         "synthetic_size"),
    Case("data-info-unknown", ["data", "info", "nosuch"], "nosuch"),
    Case("data-info-synthetic-classes-zero", ["data", "info", "synthetic",
                                              "--synthetic-classes", "0"], "synthetic_classes"),
    # --- analysis --------------------------------------------------------------------------------
    Case("analysis-results-missing", FIGS, "results"),
    Case("analysis-results-is-a-file", ["analysis", "figures", "--results", "{tmp}/file.txt",
                                        "--out", "{tmp}/figures"], "file.txt"),
    Case("analysis-scale-unknown", FIGS + ["--scale", "huge"], "scale",
         setup=columnless_parquet),
    Case("analysis-study-unknown", FIGS + ["--study", "nosuch"], "nosuch",
         setup=columnless_parquet),
    Case("analysis-id-unknown", FIGS + ["--id", "nosuch"], "nosuch",
         setup=columnless_parquet),
    Case("analysis-parquet-corrupt", FIGS, "results.parquet",
         setup=corrupt("results/quickstart/results.parquet")),
    Case("analysis-parquet-without-columns", FIGS, "results.parquet",
         setup=columnless_parquet),
    Case("analysis-out-is-a-file", ["analysis", "figures", "--results", "{tmp}/results",
                                    "--out", "{tmp}/file.txt"], "file.txt",
         setup=lambda root: (root / "results").mkdir()),
    Case("analysis-out-unwritable", ["analysis", "figures", "--results", "{tmp}/results",
                                     "--out", UNWRITABLE], UNWRITABLE,
         setup=lambda root: (root / "results").mkdir()),
    # --- the installed command itself (the README's example) -------------------------------------
    Case("readme-example", ["train", "--k", "1.5"], "k", subprocess=True),
    # --- study files (YAML): the loader lands as study/studyfile.py (issue 11); add its cases here,
    # e.g. a file with `lr: nan`, an unknown field, a K of 1, a missing file, broken YAML. ---------
]


# --- running one case --------------------------------------------------------------------------------
def expand(argv: list[str], root: Path) -> list[str]:
    return [a.replace("{tmp}", str(root)).replace("{data}", str(root / "data")) for a in argv]


def environment(root: Path, case: Case) -> dict[str, str]:
    return {"HIDDENLAB_DATA": str(root / "data"), "HIDDENLAB_OFFLINE": "1", **case.env}


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root; files with their size and modification time. (A folder's own time
    changes when a probe file is created and removed in it: that writes nothing.)"""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns) if p.is_file() else (-1, 0)
    return out


def run_subprocess(argv: list[str], root: Path, case: Case, timeout: float):
    """(exit code or None when it timed out, stderr, seconds)."""
    env = {**os.environ, **environment(root, case)}
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "hiddenlab", *argv], cwd=root / "work",
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
        return proc.returncode, err, time.time() - t0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        _, err = proc.communicate()
        return None, err, time.time() - t0


def run_in_process(argv: list[str], capsys) -> tuple[int, str, float]:
    from hiddenlab.cli import main

    t0 = time.time()
    try:
        code = main(argv)
    except SystemExit as e:   # argparse
        code = e.code
    return code, capsys.readouterr().err, time.time() - t0


def error_line(err: str) -> str | None:
    """The one line of error, or None if the output is anything else."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if len(lines) != 1 or not lines[0].startswith("hiddenlab") or ": error: " not in lines[0]:
        return None
    return lines[0]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_before_anything_runs(case: Case, tmp_path, monkeypatch, capsys):
    if case.needs_no_cuda and _cuda():
        pytest.skip("a CUDA device is visible here")
    scaffold(tmp_path)
    if case.setup:
        case.setup(tmp_path)
    argv = expand(case.argv, tmp_path)
    before = listing(tmp_path)
    if case.subprocess:
        code, err, seconds = run_subprocess(argv, tmp_path, case, timeout=MAX_SECONDS * 2)
        assert code is not None, f"no end in {seconds:.0f} s:\n{err[-2000:]}"
    else:
        for k, v in environment(tmp_path, case).items():
            monkeypatch.setenv(k, v)
        monkeypatch.chdir(tmp_path / "work")
        code, err, seconds = run_in_process(argv, capsys)
        assert not _ray_started(), "Ray was started"
    assert "Traceback" not in err, err
    line = error_line(err)
    assert line is not None, f"not one line of error:\n{err}"
    assert code == 2, (code, line)
    assert case.names.lower() in line.lower(), line
    assert listing(tmp_path) == before, "something was written"
    assert seconds < MAX_SECONDS, f"took {seconds:.0f} s"


def _ray_started() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


# --- the audit: every case in its own process, outcomes counted ------------------------------------
def audit_one(case: Case, timeout: float) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f"audit-{case.id}-") as d:
        root = Path(d)
        scaffold(root)
        if case.setup:
            case.setup(root)
        before = listing(root)
        code, err, seconds = run_subprocess(expand(case.argv, root), root, case, timeout)
        wrote = listing(root) != before
    line = error_line(err)
    if code is None:
        busy = any(w in err for w in ("epoch ", "trial(s) to run", "Started a local Ray"))
        outcome = "accepted (still running)" if busy else "hang"
    elif "Traceback" in err:
        outcome = "traceback"
    elif code == 0:
        outcome = "accepted"
    elif code == 2 and line and case.names.lower() in line.lower() and not wrote and \
            seconds < MAX_SECONDS:
        outcome = "refused"
    elif code == 2 and (wrote or seconds >= MAX_SECONDS):
        outcome = "refused late"
    elif code == 2:
        outcome = "refused, unclear message"
    else:
        outcome = f"exit {code}"
    last = [ln for ln in err.splitlines() if ln.strip()][-1:] or [""]
    return {"id": case.id, "outcome": outcome, "seconds": round(seconds, 1), "wrote": wrote,
            "last": last[0][:200]}


def audit(jobs: int, timeout: float, only: list[str]) -> list[dict]:
    from concurrent.futures import ThreadPoolExecutor

    cases = [c for c in CASES if not only or any(o in c.id for o in only)]
    with ThreadPoolExecutor(jobs) as pool:
        rows = list(pool.map(lambda c: audit_one(c, timeout), cases))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        print(f"{r['outcome']:26} {r['seconds']:6.1f}s {r['id']:40} {r['last']}", flush=True)
    print(json.dumps({"cases": len(rows), **counts}))
    return rows


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description="run every case in its own process; count outcomes")
    p.add_argument("--audit", action="store_true", required=True)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=150)
    p.add_argument("--json", default=None, help="write the rows here")
    p.add_argument("only", nargs="*", help="only cases whose id contains one of these")
    a = p.parse_args()
    rows = audit(a.jobs, a.timeout, a.only)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
