"""`hiddenlab analysis figures` end to end on parquets written in a tmp dir."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from hiddenlab.analysis.synthetic import USER_STUDY, demo_records, write_demo_storage  # noqa: E402
from hiddenlab.cli import main  # noqa: E402

STUDIES = ("ep-fig3", "sm-k", "quickstart", USER_STUDY)


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    # sm-k's LeNet panel only: enough for a published row and a second method of flip rates,
    # while the test stays fast
    records = [r for r in demo_records(seeds=3)
               if r.config["study"] != "sm-k" or r.config["model"] == "lenet-300-100"]
    write_demo_storage(root, records, studies=STUDIES, selection_studies=("quickstart",))
    return root


@pytest.fixture(scope="module")
def out(storage, tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    assert main(["analysis", "figures", "--results", str(storage), "--out", str(out)]) == 0
    return out


def test_writes_every_id_whose_studies_exist(out):
    for fid in ("ep-fig3", "sm-k", "quickstart", "flip-rate", "selected-weights",
                "study-my-sweep"):
        for ext in ("png", "pdf", "csv"):
            assert (out / f"{fid}.{ext}").stat().st_size > 0, (fid, ext)
    for fid in ("ep-table1", "sm-setup"):  # tables: CSV and Markdown
        assert (out / f"{fid}.csv").exists() and (out / f"{fid}.md").read_text().count("|") > 10
    assert not (out / "ep-fig4.png").exists() and not (out / "sm-gs-ps.csv").exists()


def test_csv_holds_the_plotted_numbers(out, storage):
    raw = pd.read_parquet(storage / "ep-fig3" / "results.parquet")
    last = raw[(raw["status"] == "TERMINATED") & raw["test_acc"].notna()]
    t = last[(last["model"] == "conv6") & (last["init"] == "kaiming_normal") &
             np.isclose(last["k"].astype(float), 0.7)]["test_acc"] * 100
    csv = pd.read_csv(out / "ep-fig3.csv")
    r = csv[(csv["panel"] == "Conv6") & (csv["series"] == "N_k") & (csv["x"] == 70)].iloc[0]
    assert r["mean"] == pytest.approx(t.mean(), rel=1e-5)
    assert r["sd"] == pytest.approx(t.std(ddof=1), rel=1e-4)
    assert r["n"] == len(t) == 3
    assert set(csv.columns) >= {"panel", "series", "kind", "x", "mean", "sd", "n"}


def test_report_lists_skipped_ids_with_missing_studies(out):
    md = (out / "report.md").read_text()
    assert "**ep-fig4**: missing studies: ep-fig4 (no results)" in md
    assert "**ep-table2**: missing studies: ep-fig8 (no results)" in md
    assert "## Published vs measured" in md and "not measured" in md
    assert re.search(r"\| Slot Machines \(GS\), LeNet-300-100, K=8, MNIST \| 98\.2 \| "
                     r"\d+\.\d\d ± \d\.\d\d \| [+-]\d\.\d\d \| 3 \| sm-k \|", md)
    assert "**Reading:** Conv2: U_k peaks at k = 50%" in md
    assert "1 of 144 trials of ep-fig3 not finished (1 ERROR): left out" in md
    assert "trial-hours of wall time" in md and "gpu-node-1" in md
    # the user's study: its generic figure, the stopped trials counted, the fits shown
    assert "### study:my-sweep: Study my-sweep" in md and "![study:my-sweep](study-my-sweep.png)" in md
    assert "- 3 trials stopped early by the scheduler at epoch 2: not finished, in the " \
        "validation panels and the best-trials table only" in md
    assert "**power-law fits of test error**" in md
    assert "[study-my-sweep-best-trials.csv](study-my-sweep-best-trials.csv)" in md
    html = (out / "report.html").read_text()
    pngs = len(list(out.glob("*.png")))
    assert html.count("data:image/png;base64,") == pngs


def test_study_filter_and_ids(storage, tmp_path):
    assert main(["analysis", "figures", "--results", str(storage), "--study", "sm-k",
                 "--id", "sm-k", "ep-fig3", "--no-pdf", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "sm-k.png").exists() and not (tmp_path / "sm-k.pdf").exists()
    md = (tmp_path / "report.md").read_text()
    assert "[sm-k.csv](sm-k.csv)" in md and "sm-k.pdf" not in md  # no link to a missing file
    assert "ep-fig3 (not selected with --study)" in md


def test_bad_input_exits_2(storage, tmp_path, capsys):
    assert main(["analysis", "figures", "--results", str(tmp_path / "nope"), "--out",
                 str(tmp_path)]) == 2
    assert main(["analysis", "figures", "--results", str(storage), "--id", "fig99", "--out",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown id 'fig99'" in err and "study:<name>" in err


def test_generic_id_of_any_study(storage, tmp_path):
    assert main(["analysis", "figures", "--results", str(storage), "--id", "study:my-sweep",
                 "study:nope", "--no-pdf", "--out", str(tmp_path)]) == 0
    csv = pd.read_csv(tmp_path / "study-my-sweep.csv")
    assert set(csv["metric"]) == {"test_acc", "best_val_acc"}
    assert set(csv["kind"]) == {"curve", "baseline", "stopped"}
    best = pd.read_csv(tmp_path / "study-my-sweep-best-trials.csv")
    assert best["best_val_acc"].is_monotonic_decreasing and len(best) == 10
    md = (tmp_path / "report.md").read_text()
    assert "**study:nope**: missing studies: nope (no results)" in md
