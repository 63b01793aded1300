"""results.parquet building blocks without Ray: storage, error lines, the table's schema."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from hiddenlab.config import ConfigError, TrialConfig, field_names
from hiddenlab.study.export import TrialRecord, _first_error_line, table
from hiddenlab.study.storage import Storage


def test_local_storage(tmp_path):
    s = Storage(str(tmp_path / "x"))
    assert s.local and s.uri == str(tmp_path / "x")
    assert not s.exists("a")
    s.write_bytes(b"hello", "a", "b.txt")
    assert s.read_text("a", "b.txt") == "hello" and s.listdir("a") == ["b.txt"]
    assert s.is_dir("a") and not s.is_dir("a", "b.txt")
    src = tmp_path / "src.bin"
    src.write_bytes(b"\0" * 10)
    s.upload_file(str(src), "c", "d.bin")
    assert (tmp_path / "x" / "c" / "d.bin").read_bytes() == b"\0" * 10
    assert not list((tmp_path / "x" / "c").glob("*.tmp-*"))
    assert Storage(f"file://{tmp_path}/x").uri == s.uri
    assert s.uri_of("st", "checkpoints", "r") == str(tmp_path / "x" / "st" / "checkpoints" / "r")


@pytest.mark.parametrize("bad", ["", "   ", "nosuchscheme://bucket/x"])
def test_bad_storage_names_the_field(bad):
    with pytest.raises(ConfigError) as e:
        Storage(bad)
    assert e.value.field == "storage"


def test_first_error_line_of_ray_error_files():
    text = ("Failure # 1 (occurred at 2026-11-23_21-00-00)\n"
            "ray::ImplicitFunc.train() (pid=1, ip=1.2.3.4)\n  File \"x.py\", line 3, in f\n"
            "    raise TrialDiverged('loss is nan at epoch 1')\n"
            "hiddenlab.study.trainer.TrialDiverged: loss is nan at epoch 1\n")
    assert _first_error_line(text) == \
        "hiddenlab.study.trainer.TrialDiverged: loss is nan at epoch 1"
    two = text + "Failure # 2 (occurred at ...)\nRayActorError: The actor died unexpectedly\n"
    assert _first_error_line(two) == "RayActorError: The actor died unexpectedly"
    assert _first_error_line("") is None


def _record(run_id, cfg, status="TERMINATED", results=(), **kw):
    config = {**cfg.to_dict(), "run_id": run_id, "series": "s", "scale": "smoke",
              "phase": "main", "study": "t", "parent_run_id": None}
    return TrialRecord(run_id=run_id, config=config, status=status, experiment="e",
                       trial_id="t1", results=list(results), **kw)


def test_table_schema_and_rows():
    a = TrialConfig(method="slot-gs", model="fc", K=4, dataset="digits", lr=0.2, epochs=2)
    b = TrialConfig(method="dense", model="fc", dataset="digits", epochs=2)
    rows_a = [{"epoch": e, "train_loss": 1.0 / e, "val_acc": 0.5, "lr": 0.2 / e,
               "eval_mode": "argmax", "flip_rate": math.nan, "flip_rate_layers": {"l1": 0.1},
               "params": 100, "subnet_params": 100, "kept_fraction": 1.0, "done": e == 2,
               "wall_time_s": float(e), "hostname": "h", "node_id": "n",
               "timestamp": 1, "training_iteration": e, "pid": 7,
               **({"test_acc": 0.9, "test_loss": 0.3} if e == 2 else {})} for e in (1, 2)]
    recs = {"a": _record("a", a, results=rows_a),
            "b": _record("b", b, status="ERROR", error="TrialDiverged: loss is nan", fatal=True)}
    tab = table("t", recs)
    names = tab.schema.names
    for col in ["study", "run_id", "status", "error", *field_names(), "K_resolved",
                "k_resolved", "init_resolved", "lr_resolved", "epoch", "epoch_lr", "test_acc",
                "wall_time_s", "hostname", "eval_mode_resolved", "flip_rate_layers"]:
        assert col in names, col
    assert len(names) == len(set(names))
    for ray_key in ("timestamp", "training_iteration", "pid"):
        assert ray_key not in names
    assert tab.schema.field("synthetic_shape").type == pa.list_(pa.int64())
    assert tab.schema.field("epoch").type == pa.int64()
    df = tab.to_pandas()
    assert len(df) == 3                                  # 2 epochs of a + 1 row for b
    ra = df[df.run_id == "a"].sort_values("epoch")
    assert list(ra.epoch) == [1, 2] and list(ra.epoch_lr) == [0.2, 0.1]
    assert (ra.lr == 0.2).all() and (ra.K_resolved == 4).all()
    assert ra.test_acc.isna().tolist() == [True, False]
    assert ra.flip_rate_layers.iloc[0] == '{"l1": 0.1}'
    rb = df[df.run_id == "b"].iloc[0]
    assert rb.status == "ERROR" and "TrialDiverged" in rb.error and math.isnan(rb.epoch)
    assert rb.lr_resolved == 0.01 and rb.k_resolved == 1.0
    assert _parquet(table("t", recs)) == _parquet(tab)      # deterministic (NaN included)


def _parquet(tab) -> bytes:
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(tab, sink)
    return sink.getvalue().to_pybytes()
