"""The skipping rule, published-vs-measured matching, claims, and the report's Markdown/HTML."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import hiddenlab.analysis as A  # noqa: E402
from hiddenlab.analysis.published import claims, compare  # noqa: E402
from hiddenlab.analysis.report import (cost_tables, render_html, render_markdown,  # noqa: E402
                                       report_blocks)
from hiddenlab.analysis.synthetic import results_frame, trial_record  # noqa: E402


def _frame(records):
    return results_frame(records)


def _ep_imagenet(accs, init="kaiming_normal", model="resnet50", k=0.3, status="TERMINATED",
                 seed0=0, **kw):
    return [trial_record("ep-fig8", acc=a, seed=s, method="edgepopup", model=model, k=k,
                         init=init, dataset="imagenet", status=status, **kw)
            for s, a in enumerate(accs, start=seed0)]


def test_missing_study_is_skipped_and_named():
    df = _frame(_ep_imagenet([0.6, 0.62]))
    res = A.build_all(df, {}, ids=["ep-fig3", "ep-fig8", "ep-table1"])
    assert isinstance(res["ep-fig3"], A.Skipped)
    assert res["ep-fig3"].missing == ("ep-fig3",)
    assert "missing studies: ep-fig3 (no results)" in res["ep-fig3"].reason
    assert isinstance(res["ep-fig8"], A.FigureResult)
    assert isinstance(res["ep-table1"], A.FigureResult)  # computed: needs no trials


def test_study_with_only_failed_trials_is_skipped_not_drawn():
    df = _frame([trial_record("sm-k", acc=0.9, seed=s, method="slot-gs", model="slot-conv2",
                              K=8, status="ERROR", epochs_done=1) for s in range(2)])
    r = A.build("sm-k", df)
    assert isinstance(r, A.Skipped) and "no finished trials: 2 ERROR" in r.reason


def test_study_not_selected_is_named_as_such():
    df = _frame(_ep_imagenet([0.6]))
    r = A.build("ep-fig8", df, selected=["sm-k"])
    assert isinstance(r, A.Skipped) and "not selected with --study" in r.reason


def test_partial_seeds_are_drawn_with_n_and_a_note():
    rows = _ep_imagenet([0.60, 0.62, 0.61])
    rows += _ep_imagenet([0.70], init="signed_constant")  # one seed only
    rows += _ep_imagenet([0.70], init="signed_constant", status="RUNNING", seed0=1)
    r = A.build("ep-fig8", _frame(rows))
    d = r.data.set_index("init_resolved")
    assert d.at["kaiming_normal", "n"] == 3 and d.at["signed_constant", "n"] == 1
    assert any("1 RUNNING" in n for n in r.notes)
    assert any("fewer than 3 seeds" in n for n in r.notes)
    labels = [t.get_text() for t in r.fig.axes[0].texts]
    assert any("n=1" in t for t in labels)


def test_published_rows_match_by_model_init_k_and_dataset():
    rows = _ep_imagenet([0.600, 0.610, 0.620])  # ResNet-50 N_k: published 61.7
    rows += _ep_imagenet([0.700, 0.720], init="signed_constant", model="wide-resnet50-2")
    rows += _ep_imagenet([0.99], k=0.5)  # another k: must not match
    # Slot Machines is compared at the best-validation network (the paper stops early)
    rows += [trial_record("sm-k", acc=a - 0.01, best_acc=a, seed=s, method="slot-gs",
                          model="lenet-300-100", K=2, dataset="mnist")
             for s, a in enumerate([0.969, 0.971])]
    c = compare(_frame(rows))
    assert len(c) == len(A.PUBLISHED)
    r = c[(c["setting"] == "edge-popup, ResNet-50, N_k, k=30%, ImageNet") &
          (c["quantity"] == "top-1 (%)")].iloc[0]
    assert r["measured"] == pytest.approx(61.0) and r["n"] == 3
    assert r["sd"] == pytest.approx(1.0)
    assert r["difference"] == pytest.approx(61.0 - 61.7)
    w = c[(c["setting"] == "edge-popup, WRN-50-2, U_k, k=30%, ImageNet")]
    top1 = w[w["quantity"] == "top-1 (%)"].iloc[0]
    assert top1["measured"] == pytest.approx(71.0) and top1["difference"] == pytest.approx(-2.3)
    size = w[w["quantity"] == "sub-network params (M)"].iloc[0]
    assert size["measured"] == pytest.approx(0.3 * 68.8) and size["published"] == 20.6
    assert r["compared"] == "test acc, last epoch"
    s = c[c["setting"] == "Slot Machines (GS), LeNet-300-100, K=2, MNIST"].iloc[0]
    assert s["measured"] == pytest.approx(97.0) and s["difference"] == pytest.approx(0.0)
    assert s["compared"] == "test acc, best validation epoch"
    assert size["compared"] == "–"
    missing = c[c["setting"].str.contains("VGG-19")].iloc[0]
    assert missing["n"] == 0 and np.isnan(missing["measured"])


def test_claims_are_computed_from_figures():
    rows = []
    for K, gs, ps in ((2, 0.90, 0.88), (8, 0.95, 0.93), (32, 0.96, 0.97)):
        for s in range(2):
            rows.append(trial_record("sm-gs-ps", acc=gs, seed=s, method="slot-gs",
                                     model="slot-conv4", K=K))
            rows.append(trial_record("sm-gs-ps", acc=ps, seed=s, method="slot-ps",
                                     model="slot-conv4", K=K))
    res = A.build_all(_frame(rows), {}, ids=["sm-gs-ps"])
    c = claims(res).set_index("claim")
    assert c.at["GS beats PS at every K", "verdict"] == "does not hold"
    assert c.at["GS beats PS at every K", "evidence"] == "GS > PS at 2/3 points"
    assert c.at["the best k lies in [30, 70]%", "verdict"] == "not measured"


def test_report_markdown_and_html(tmp_path):
    df = _frame(_ep_imagenet([0.600, 0.610, 0.620], hostname="gpu-a"))
    res = A.build_all(df, {}, ids=["ep-fig8", "ep-fig3"])
    A.write_result(res["ep-fig8"], tmp_path, pdf=False)
    blocks = report_blocks(res, df, "STORE", tmp_path)
    md, page = render_markdown(blocks), render_html(blocks)
    assert "| edge-popup (Ramanujan et al. 2020), Table 2 | top-1 (%) | edge-popup, ResNet-50, N_k, " \
           "k=30%, ImageNet | 61.7 | 61.00 ± 1.00 | -0.70 | 3 | ep-fig8 | test acc, last epoch |" \
           in md
    assert "| Slot Machines (GS), LeNet-300-100, K=2, MNIST | 97 | not measured | – | 0 | – | " \
           "test acc, best validation epoch |" in md
    assert "**ep-fig3**: missing studies: ep-fig3 (no results)" in md
    assert "![ep-fig8](ep-fig8.png)" in md and "**Reading:** best hidden sub-network" in md
    assert 'src="data:image/png;base64,iVBOR' in page  # the PNG inline
    assert "<table>" in page and "gpu-a" in page
    host, study, total = cost_tables(df)
    assert host.at[0, "trials"] == 3
    assert host.at[0, "wall_hours"] == pytest.approx(3 * (20 * 4 + 5) / 3600, abs=1e-3)
    assert total.startswith("3 trials (3 finished) on 1 host(s)")
