"""`hiddenlab study export NAME --networks DIR` and the sizes of `study show`, on a real
(embedded, 2-CPU) Ray study."""

from __future__ import annotations

import json

import pytest

from hiddenlab.cli import main
from hiddenlab.study import export, netexport as nx
from hiddenlab.study.registry import Study, studies
from hiddenlab.study.runner import RunOptions, run_study
from hiddenlab.study.spaces import Phase, Series

pytestmark = pytest.mark.timeout(900)


def _digits(method: str, **kw) -> dict:
    return dict(method=method, model="fc", dataset="digits", subset=256, epochs=2,
                batch_size=64, num_workers=0, width_mult=0.25, **kw)


STUDY = Study(name="netexport-test", title="networks of a study", feeds=(),
              phases=lambda scale: [Phase("main", [
                  Series("edge-popup", _digits("edgepopup", lr=0.1)),
                  Series("slot GS", _digits("slot-gs", K=8)),
                  Series("diverges", _digits("dense", lr=1e6)),
              ])])


def test_study_networks_export_and_sizes(ray_session, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(studies(), STUDY.name, STUDY)
    storage = str(tmp_path / "results")
    run_study(STUDY, RunOptions(scale="smoke", storage=storage, verbose=0, figures=False))
    df = export.load(storage, STUDY.name)
    capsys.readouterr()
    nets = tmp_path / "nets"
    assert main(["study", "export", STUDY.name, "--storage", storage, "--networks",
                 str(nets)]) == 0
    assert "2 network(s)" in capsys.readouterr().out   # the diverged trial has none
    rows = json.loads((nets / "networks.json").read_text())
    assert len(rows) == 2
    for row in rows:
        nf = nx.read(nets / row["file"])
        final = df[(df.run_id == row["run_id"]) & (df.epoch == 2)].iloc[0]
        assert nf.header["epoch"] == 2 and row["test_acc"] == final.test_acc
        assert nx.accuracy_on_test_set(nf) == final.test_acc
        assert nx.export_size(final.to_dict()) == nf.size   # from the results row alone
        assert row["bytes"] == (nets / row["file"]).stat().st_size < row["float32_bytes"]
    assert main(["study", "show", STUDY.name, "--storage", storage]) == 0
    out = capsys.readouterr().out
    assert "export" in out and "float32" in out
    slot = nx.export_size(df[df.method == "slot-gs"].iloc[0].to_dict())
    assert nx.human_bytes(slot.export_bytes) in out   # 3 bits a connection (K = 8)
    assert slot.bits == 3 * slot.connections
