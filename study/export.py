"""Ray Tune experiment directories -> one tidy `results.parquet` per study (docs/CONTRACTS.md).

One row per trial x epoch: `study`, `run_id`, `status`, `error`, every TrialConfig field (tuples
as lists), `K_resolved`, `k_resolved`, `init_resolved`, the trainer's per-epoch metrics,
`wall_time_s`, `hostname`, and the study's bookkeeping (`scale`, `phase`, `series`,
`parent_run_id`, `experiment`, `trial_id`, `node_id`, `num_failures`). A trial with no finished
epoch (pending, or failed in its first epoch) has one row with a null `epoch`.

Every experiment under `<storage>/<study>/tune/` is read; a run id found in several (a re-run with
more seeds, a retried trial) keeps its best record (completed first, then the most epochs, then the
newest). Epoch rows are de-duplicated (a trial restored from an older checkpoint reports some
epochs again: the last report wins), so the export is idempotent and exact after any failure.

Status: Ray's own (`TERMINATED`, `ERROR`, `RUNNING`, `PENDING`, `PAUSED`), except that a trial a
scheduler (ASHA, HyperBand, median stopping, PBT) ended before its last epoch is `STOPPED`: Ray
calls it TERMINATED and marks its last result done, but it has no test accuracy; its rows keep
`done` false and `stopped_epoch` says where it ended. A sampled trial's fields are the resolved
TrialConfig its results carry (`trial_config`), its run id the one it reported.
"""

from __future__ import annotations

import json
import math
import posixpath
import sys
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hiddenlab.config import TrialConfig, all_fields, field_names, kind_of
from hiddenlab.study import packs
from hiddenlab.study.storage import Storage

RESULTS_FILE = "results.parquet"
TUNE_DIR = "tune"

METRICS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "flip_rate", "epoch_lr",
           "epoch_time_s", "kept_fraction", "params", "subnet_params", "test_acc", "test_loss",
           "done", "best_val_epoch", "best_val_acc", "best_val_test_acc", "best_val_test_loss",
           "kept_fraction_paper"]
# Metrics named like a TrialConfig field get another column name (the field keeps its own):
# the epoch's learning rate vs the configured peak `lr`; the resolved vs configured eval_mode.
RENAMED = {"lr": "epoch_lr", "eval_mode": "eval_mode_resolved"}
_METRIC_TYPES = {"epoch": pa.int64(), "params": pa.int64(), "subnet_params": pa.int64(),
                 "done": pa.bool_(), "best_val_epoch": pa.int64()}
# Keys Ray Tune adds to every result, or our reporter's bookkeeping: not metrics.
_RAY_KEYS = {"timestamp", "checkpoint_dir_name", "training_iteration", "trial_id", "date",
             "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "config",
             "time_since_restore", "iterations_since_restore", "experiment_tag",
             "should_checkpoint", "run_id", "node_id", "fatal", "diverged", "error",
             "experiment_id", "wall_time_s", "trial_config", "device_kind"}
META = ["scale", "phase", "series", "parent_run_id", "experiment", "trial_id", "node_id",
        "num_failures"]
STATUS_ORDER = ("TERMINATED", "STOPPED", "ERROR", "RUNNING", "PAUSED", "PENDING")
STOPPED = "STOPPED"


@dataclass
class TrialRecord:
    """One trial of one Ray Tune experiment, as found in the storage."""

    run_id: str
    config: dict[str, Any]
    status: str
    experiment: str
    trial_id: str
    num_failures: int = 0
    error: str | None = None
    fatal: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)   # epoch rows, deduplicated
    last_seen: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.results)

    @property
    def finished(self) -> bool:
        """Nothing more to run: completed, stopped early by the scheduler, or failed for a
        reason a re-run would repeat."""
        return self.status in ("TERMINATED", STOPPED) or (self.status == "ERROR" and self.fatal)

    @property
    def stopped_epoch(self) -> int | None:
        return self.epochs if self.status == STOPPED else None


# --- reading Ray Tune experiments ----------------------------------------------------------------
def experiments(storage: Storage, study: str) -> list[str]:
    return [d for d in storage.listdir(study, TUNE_DIR) if storage.is_dir(study, TUNE_DIR, d)]


def _first_error_line(text: str) -> str | None:
    """The last failure's exception line from Ray's error.txt."""
    if not text.strip():
        return None
    blocks = text.split("Failure # ")
    block = blocks[-1]
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    for ln in reversed(lines):
        head = ln.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Diverged", "Died", "Interrupt")) or \
                "Error:" in ln:
            return ln[:2000]
    return (lines[-1] if lines else text.strip())[:2000]


def _read_results(storage: Storage, trial_path: str) -> list[dict[str, Any]]:
    """result.json lines of one trial (JSON per line; NaN allowed)."""
    path = posixpath.join(trial_path, "result.json")
    try:
        with storage.fs.open_input_stream(path) as f:
            text = f.readall().decode("utf-8", errors="replace")
    except (FileNotFoundError, OSError):
        return []
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash mid-write
            continue
    return rows


def read_experiment(storage: Storage, study: str, name: str) -> list[TrialRecord]:
    """Trials of one experiment (empty if Tune never saved its state)."""
    from ray.tune import ExperimentAnalysis

    exp_path = storage.path(study, TUNE_DIR, name)
    try:
        analysis = _quiet(lambda: ExperimentAnalysis(exp_path, storage_filesystem=storage.fs))
    except (ValueError, FileNotFoundError, OSError):   # no snapshot yet (killed at once)
        return []
    except Exception as e:  # a snapshot this Ray cannot read: say so, keep the others
        print(f"[hiddenlab] skipping experiment {name}: {type(e).__name__}: {e}",
              file=sys.stderr)
        return []
    records = []
    for trial in analysis.trials:
        config = dict(trial.config)
        trial_path = trial.path or posixpath.join(exp_path, trial.storage.trial_dir_name)
        raw = _read_results(storage, trial_path)
        run_id = _identify(config, raw, trial.trial_id)
        epochs: dict[int, dict] = {}
        fatal, error = False, None
        last_seen = 0.0
        for r in raw:
            last_seen = max(last_seen, float(r.get("timestamp") or 0))
            if r.get("fatal"):
                fatal, error = True, r.get("error")
                continue
            if r.get("epoch") is not None:
                epochs[int(r["epoch"])] = r
        meta = trial.run_metadata
        status = str(trial.status)
        if fatal:
            status = "ERROR"  # the experiment snapshot may predate the failure
        elif status == "TERMINATED" and _stopped_early(config, [epochs[e] for e in epochs]):
            status = STOPPED
        if status == "ERROR" and not error:
            fname = meta.error_filename or "error.txt"
            try:
                with storage.fs.open_input_stream(posixpath.join(trial_path, fname)) as f:
                    error = _first_error_line(f.readall().decode("utf-8", errors="replace"))
            except (FileNotFoundError, OSError):
                error = None
            error = error or "failed (no error file)"
        # a packed trial (study/packs.py) becomes one record per member
        records.extend(packs.expand(TrialRecord(
            run_id=run_id, config=config, status=status, experiment=name,
            trial_id=trial.trial_id, num_failures=int(meta.num_failures or 0), error=error,
            fatal=fatal, results=[epochs[e] for e in sorted(epochs)], last_seen=last_seen)))
    return records


def _identify(config: dict[str, Any], raw: list[dict[str, Any]], trial_id: str) -> str:
    """The trial's run id: its config's (grid trials), else the one it reported (sampled
    trials, whose resolved fields are merged into `config`), else one computed from the config
    (a sampled trial that never reported), else a placeholder naming the Ray trial."""
    if config.get("run_id"):
        return config["run_id"]
    for r in reversed(raw):
        if r.get("trial_config"):
            config.update(json.loads(r["trial_config"]))
            break
    for r in reversed(raw):
        if r.get("run_id"):
            config["run_id"] = r["run_id"]
            return r["run_id"]
    try:
        from hiddenlab.study.spaces import config_from_ray

        config["run_id"] = config_from_ray(config).run_id()
    except Exception:   # e.g. a field its derive would have set: unknown until it runs
        config["run_id"] = f"unstarted-{trial_id}"
    return config["run_id"]


def _stopped_early(config: dict[str, Any], rows: list[dict[str, Any]]) -> bool:
    """Ended by the scheduler: epochs reported, but not the last one with its test accuracy."""
    if not rows:
        return False
    if any(r.get("test_acc") is not None for r in rows):
        return False
    epochs = config.get("epochs")
    last = max(int(r["epoch"]) for r in rows)
    return not isinstance(epochs, int) or last < epochs


def _quiet(fn):
    """Run fn with Ray Tune's loggers at ERROR (ExperimentAnalysis warns per trial without
    results, e.g. pending ones)."""
    import logging

    names = ["ray.tune", "ray.tune.analysis.experiment_analysis", "ray.train"]
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        return fn()
    finally:
        for lg, level in saved:
            lg.setLevel(level)


def collect(storage: Storage, study: str) -> dict[str, TrialRecord]:
    """The best record of every run id of `study` in the storage."""
    best: dict[str, TrialRecord] = {}
    for name in experiments(storage, study):
        for rec in read_experiment(storage, study, name):
            cur = best.get(rec.run_id)
            if cur is None or _rank(rec) > _rank(cur):
                best[rec.run_id] = rec
    return best


def _rank(rec: TrialRecord) -> tuple:
    return (rec.status == "TERMINATED", rec.finished, rec.epochs, rec.last_seen, rec.experiment)


def finished_run_ids(storage: Storage, study: str, retry_errored: bool = False) -> set[str]:
    recs = collect(storage, study)
    return {rid for rid, r in recs.items()
            if r.status in ("TERMINATED", STOPPED) or (r.finished and not retry_errored)}


# --- the table -----------------------------------------------------------------------------------
_ARROW = {"tuple": pa.list_(pa.int64()), "bool": pa.bool_(), "int": pa.int64(),
          "float": pa.float64(), "str": pa.string()}


def _cfg_columns() -> list[tuple[str, pa.DataType]]:
    """Every shared field and every method's options (null where a method does not take one)."""
    return [(name, _ARROW[kind_of(f)]) for name, f in all_fields().items()]


def _value(v: Any) -> Any:
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return v


def rows(study: str, records: dict[str, TrialRecord]) -> list[dict[str, Any]]:
    names = set(field_names())
    out = []
    for rid in sorted(records):
        rec = records[rid]
        cfg_fields = {k: v for k, v in rec.config.items() if k in names}
        try:
            cfg = TrialConfig.from_record(cfg_fields)
            resolved = {"K_resolved": cfg.num_values, "k_resolved": cfg.keep,
                        "init_resolved": cfg.init, "lr_resolved": cfg.lr}
            cfg_fields = cfg.to_dict()
        except Exception:  # a config this version no longer accepts: keep what is there
            resolved = {"K_resolved": None, "k_resolved": None, "init_resolved": None,
                        "lr_resolved": None}
        base = {"study": study, "run_id": rid, "status": rec.status, "error": rec.error,
                **cfg_fields, **resolved,
                "scale": rec.config.get("scale"), "phase": rec.config.get("phase"),
                "series": rec.config.get("series"),
                "parent_run_id": rec.config.get("parent_run_id"),
                "experiment": rec.experiment, "trial_id": rec.trial_id,
                "num_failures": rec.num_failures, "stopped_epoch": rec.stopped_epoch}
        if not rec.results:
            out.append({**base, "epoch": None})
            continue
        for r in rec.results:
            row = dict(base)
            for k, v in r.items():
                if k in _RAY_KEYS:
                    continue
                if k in names:          # a metric named like a config field
                    k = RENAMED.get(k, f"{k}_metric")
                row[k] = _value(v)
            row["wall_time_s"] = r.get("wall_time_s")
            row["hostname"] = r.get("hostname")
            row["node_id"] = r.get("node_id")
            row["device_kind"] = r.get("device_kind")
            if rec.status == STOPPED:   # Ray marks the result it stopped on as done
                row["done"] = False
            out.append(row)
    return out


def table(study: str, records: dict[str, TrialRecord]) -> pa.Table:
    data = rows(study, records)
    schema_fields: list[tuple[str, pa.DataType]] = [
        ("study", pa.string()), ("run_id", pa.string()), ("status", pa.string()),
        ("error", pa.string()), *_cfg_columns(),
        ("K_resolved", pa.int64()), ("k_resolved", pa.float64()), ("init_resolved", pa.string()),
        ("lr_resolved", pa.float64()),
        *[(m, _METRIC_TYPES.get(m, pa.float64())) for m in METRICS],
        ("wall_time_s", pa.float64()), ("hostname", pa.string()),
        ("scale", pa.string()), ("phase", pa.string()), ("series", pa.string()),
        ("parent_run_id", pa.string()), ("experiment", pa.string()), ("trial_id", pa.string()),
        ("node_id", pa.string()), ("num_failures", pa.int64()), ("stopped_epoch", pa.int64()),
        ("device_kind", pa.string()),
    ]
    known = {n for n, _ in schema_fields}
    extra = sorted({k for row in data for k in row} - known)
    for name in extra:
        values = [row.get(name) for row in data]
        schema_fields.append((name, _infer(values)))
    columns = {}
    for name, typ in schema_fields:
        values = [_coerce(row.get(name), typ) for row in data]
        columns[name] = pa.array(values, type=typ)
    return pa.table(columns, schema=pa.schema(schema_fields))


def _infer(values: list) -> pa.DataType:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.float64()
    if kinds <= {bool}:
        return pa.bool_()
    if kinds <= {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    return pa.string()


def _coerce(v: Any, typ: pa.DataType) -> Any:
    if v is None:
        return None
    if pa.types.is_string(typ):
        return v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict)) \
            else str(v)
    if pa.types.is_floating(typ):
        try:
            return float(v)
        except (TypeError, ValueError):
            return math.nan
    if pa.types.is_integer(typ):
        try:
            return int(v)
        except (TypeError, ValueError):
            return None
    if pa.types.is_boolean(typ):
        return bool(v)
    if pa.types.is_list(typ):
        return [int(x) for x in v]
    return v


def export(storage: Storage | str, study: str) -> tuple[str, pa.Table]:
    """Write `<storage>/<study>/results.parquet` from every experiment of the study; returns
    (path or URI, table). Idempotent: the same experiments give the same file."""
    storage = storage if isinstance(storage, Storage) else Storage(storage)
    tab = table(study, collect(storage, study))
    sink = pa.BufferOutputStream()
    pq.write_table(tab, sink)
    storage.write_bytes(sink.getvalue().to_pybytes(), study, RESULTS_FILE)
    return storage.uri_of(study, RESULTS_FILE), tab


def load(storage: Storage | str, study: str):
    """results.parquet as a pandas DataFrame (None if there is none)."""
    storage = storage if isinstance(storage, Storage) else Storage(storage)
    if not storage.exists(study, RESULTS_FILE):
        return None
    return pq.read_table(pa.BufferReader(storage.read_bytes(study, RESULTS_FILE))).to_pandas()
