"""Read study results: `results.parquet` per study (schema in docs/CONTRACTS.md) and the per-trial
`selection.json` artifacts, and reduce the per-epoch rows to one row per finished trial.

A trial's final accuracy is `test_acc` on its last-epoch row (or, for figures of papers that
select on validation, `best_val_test_acc`: `use_accuracy`), and only when that row says
TERMINATED: an ERROR / RUNNING / PENDING trial, or one a scheduler STOPPED early, never feeds a
test accuracy, but it is counted (`trial_table`) so figures can say how many trials are missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from hiddenlab.config import ConfigError, all_fields
from hiddenlab.study.spaces import SCALES

from .core import arch_name


def _point_fields() -> tuple[str, ...]:
    """Config fields that tell two trials' configurations apart: every field of the run id
    (`identity` metadata) except the seed (what a point averages over) and the finetune parent
    path (it names the seed's own parent)."""
    return tuple(name for name, f in all_fields().items()
                 if f.metadata.get("identity", True) and name not in ("seed", "parent"))


def load_results(storage, studies=None) -> pd.DataFrame:
    """Concatenate `<storage>/<study>/results.parquet` of the named studies (all when None).

    A named study without a parquet is simply absent (figures needing it are then skipped, naming
    it). A parquet that cannot be read, or lacks the columns every figure reads, is refused
    naming the file.
    """
    frames = []
    for path in results_files(storage, studies):
        try:
            f = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several kinds for a corrupt or foreign file
            raise _unreadable(path, e) from None
        _check_columns(path, list(f.columns))
        frames.append(f)
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["study", "run_id", "status", "epoch"])
    df = pd.concat(frames, ignore_index=True, sort=False)
    df.attrs["storage"] = str(Path(storage))
    return df


REQUIRED_COLUMNS = ("study", "run_id", "status", "epoch")   # what every figure reads


def results_files(storage, studies=None) -> list[Path]:
    """Each `<storage>/<study>/results.parquet` (of `studies` when given)."""
    root = Path(storage)
    if not root.is_dir():
        raise ConfigError("results", f"{root} is not a directory")
    if studies:
        return [p for p in (root / s / "results.parquet" for s in studies) if p.is_file()]
    return sorted(root.glob("*/results.parquet"))


def check_results(storage, studies=None) -> None:
    """Every results table readable, with the columns figures read (its schema only: cheap)."""
    import pyarrow.parquet as pq

    for path in results_files(storage, studies):
        try:
            names = pq.read_schema(path).names
        except Exception as e:
            raise _unreadable(path, e) from None
        _check_columns(path, names)


def _unreadable(path: Path, error: Exception) -> ConfigError:
    return ConfigError("results", f"{path} is not a readable parquet file "
                       f"({type(error).__name__}); rewrite it with `hiddenlab study export "
                       f"{path.parent.name}` or move it away")


def _check_columns(path: Path, names: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ConfigError("results", f"{path} has no {', '.join(missing)} column: not a "
                          f"hiddenlab results table (rewrite it with `hiddenlab study export "
                          f"{path.parent.name}`)")


def _hashable(v):
    if isinstance(v, (list, tuple, np.ndarray)):
        return tuple(_hashable(x) for x in v)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (np.floating, float)):
        return round(float(v), 10)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def config_key(frame: pd.DataFrame, exclude=()) -> pd.Series:
    """Per row, a short hash of the trial config without the seed (and without `exclude`): trials
    with the same key are seeds of one point. The exporter writes resolved values (`lr` is the
    rate the trial trained with), so the config columns compare as they are."""
    cols = [c for c in _point_fields() if c in frame.columns and c not in set(exclude)]
    if frame.empty:
        return pd.Series([], dtype=object, index=frame.index)
    text = pd.DataFrame({c: _as_text(frame[c]) for c in sorted(cols)}, index=frame.index)
    h = pd.util.hash_pandas_object(text, index=False)
    return h.map(lambda v: f"{v:016x}"[:12]).astype(object)


def _as_text(col: pd.Series) -> pd.Series:
    """Column values as comparable text: None/NaN alike, lists like tuples, 1.0 == 1."""
    def one(v):
        v = _hashable(v)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return repr(v)
    return col.map(one)


def last_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Each trial's last-epoch row (a rerun appended later wins a tie)."""
    if "epoch" in df.columns:
        order = df.assign(_pos=np.arange(len(df))).sort_values(
            ["epoch", "_pos"], kind="stable", na_position="first")
        return order.groupby(["study", "run_id"], sort=False).tail(1).drop(columns="_pos")
    return df.groupby(["study", "run_id"], sort=False).tail(1)


def is_final(frame: pd.DataFrame) -> bool:
    return "acc" in frame.columns and not frame.duplicated(["study", "run_id"]).any()


def final_results(df: pd.DataFrame) -> pd.DataFrame:
    """One row per finished trial: the last-epoch row of TERMINATED trials with a test accuracy.

    Adds `acc` (= test_acc, the last epoch's network; `use_accuracy` switches a figure to the
    best-validation network's), `arch` (the model name with depth applied), `point` (config hash
    without the seed) and `total_epochs` (finetune: parent_epoch + epochs). Idempotent.
    """
    if is_final(df):
        return df
    if df.empty or "run_id" not in df.columns:
        return pd.DataFrame(columns=["study", "run_id", "acc", "arch", "point", "total_epochs"])
    last = last_rows(df)
    ok = last["status"].eq("TERMINATED") & last["test_acc"].notna()
    out = last[ok].copy()
    out["acc"] = out["test_acc"].astype(float)
    out["arch"] = [arch_name(m, d) for m, d in zip(out["model"], out["depth"])]
    out["point"] = config_key(out)
    out["total_epochs"] = _total_epochs(out, df)
    return out.reset_index(drop=True)


LAST, BEST_VAL = "test_acc", "best_val_test_acc"
ACCURACY = {LAST: "the last epoch's network", BEST_VAL: "the network of the best validation epoch"}


def use_accuracy(final: pd.DataFrame, column: str) -> tuple[pd.DataFrame, int]:
    """`final` with `acc` taken from `column` (`test_acc` or `best_val_test_acc`). Trials without
    it (exported before best-validation results were recorded) keep their last-epoch accuracy;
    returns (frame, how many fell back)."""
    out = final.copy()
    if column == LAST:
        return out, 0
    chosen = out[column].astype(float) if column in out.columns else \
        pd.Series(np.nan, index=out.index)
    missing = chosen.isna()
    out["acc"] = chosen.where(~missing, out["test_acc"].astype(float))
    return out, int(missing.sum())


def _total_epochs(out: pd.DataFrame, df: pd.DataFrame) -> pd.Series:
    """Training budget of a trial: its epochs, plus the parent's epochs for a finetune trial.
    A finetune without `parent_epoch` started from the parent's last epoch: found through
    `parent_run_id` (the exporter's column) or the parent path's last component."""
    epochs = out["epochs"].astype(float) if "epochs" in out.columns else \
        pd.Series(np.nan, index=out.index)
    if "method" not in out.columns:
        return epochs
    total = epochs.copy()
    ft = out["method"].eq("finetune")
    if not ft.any():
        return total
    pe = out["parent_epoch"].astype(float) if "parent_epoch" in out.columns else \
        pd.Series(np.nan, index=out.index)
    parents = df.drop_duplicates("run_id").set_index("run_id")["epochs"] \
        if "epochs" in df.columns else pd.Series(dtype=float)
    for i in out.index[ft]:
        start = pe.at[i]
        prid = out.at[i, "parent_run_id"] if "parent_run_id" in out.columns else None
        if not np.isfinite(start) and isinstance(prid, str):
            start = float(parents.get(prid, np.nan))
        if not np.isfinite(start) and isinstance(out.at[i, "parent"], str):
            name = Path(out.at[i, "parent"]).name
            if name.endswith(".pt"):
                name = Path(out.at[i, "parent"]).parent.name
            start = float(parents.get(name, np.nan))
        total.at[i] = start + epochs.at[i]
    return total


def trial_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial (finished or not): study, run_id, status, error, epochs done, wall time
    (the largest `wall_time_s` seen), hostname; used for the missing-trial notes and the cost."""
    if df.empty or "run_id" not in df.columns:
        return pd.DataFrame(columns=["study", "run_id", "status", "wall_time_s", "hostname"])
    last = last_rows(df)
    keep = [c for c in ("study", "run_id", "status", "error", "epoch", "method", "model",
                        "hostname", "test_acc") if c in last.columns]
    out = last[keep].copy()
    if "wall_time_s" in df.columns:
        wall = df.groupby(["study", "run_id"], sort=False)["wall_time_s"].max()
        out = out.join(wall, on=["study", "run_id"])
    else:
        out["wall_time_s"] = np.nan
    if "status" not in out.columns:
        out["status"] = "TERMINATED"
    finished = out["status"].eq("TERMINATED")
    if "test_acc" in out.columns:
        finished &= out["test_acc"].notna()
    out["finished"] = finished
    return out.reset_index(drop=True)


def one_scale(df: pd.DataFrame, scale: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Per study, the trials of one scale (the exporter's `scale` column: smoke / paper): `scale`
    when given, else the largest scale that has finished trials. Smoke and paper trials differ in
    epochs and data, so they never share a plot. Returns (frame, {study: note on what was left
    out})."""
    if df.empty or "scale" not in df.columns:
        return df, {}
    if not df.index.is_unique:  # e.g. frames concatenated without ignore_index
        df = df.reset_index(drop=True)
    rank = {s: i for i, s in enumerate(SCALES)}
    keep = pd.Series(True, index=df.index)
    notes = {}
    for study, g in df.groupby("study", sort=False):
        scales = g["scale"].fillna("").unique().tolist()
        if scale is None and len(scales) < 2:
            continue
        if scale is not None:
            chosen = scale
        else:
            t = trial_table(g.assign(scale=g["scale"].fillna("")))
            sc = g.groupby(["study", "run_id"])["scale"].first().fillna("")
            t = t.join(sc.rename("scale_"), on=["study", "run_id"])
            done = t.loc[t["finished"], "scale_"].unique().tolist() or scales
            chosen = max(done, key=lambda s: (rank.get(s, -1), s))
        drop = g["scale"].fillna("") != chosen
        if drop.any():
            keep[g.index[drop]] = False
            n = g.loc[drop].drop_duplicates("run_id").shape[0]
            other = ", ".join(sorted(set(g.loc[drop, "scale"].fillna("(none)"))))
            notes[study] = (f"{n} trials of {study} at scale {other} left out "
                            f"(showing scale {chosen or '(none)'}; choose with --scale)")
    return df[keep], notes


def select_study(df: pd.DataFrame, study) -> pd.DataFrame:
    """Rows of the named study (or studies); the frame unchanged for None."""
    if study is None or "study" not in df.columns:
        return df
    names = [study] if isinstance(study, str) else list(study)
    return df[df["study"].isin(names)]


def load_selections(storage, df: pd.DataFrame | None = None) -> dict:
    """`{(study, run_id): {layer: {"bins", "selected", "unselected"}}}` from
    `<storage>/<study>/artifacts/<run_id>/selection.json`, for the trials of `df` (all when None).
    Unreadable files are left out (a warning would interrupt nothing a reader can fix here)."""
    root = Path(storage)
    out: dict = {}
    if df is not None and not df.empty and "run_id" in df.columns:
        pairs = df[["study", "run_id"]].drop_duplicates().itertuples(index=False)
        paths = [((s, r), root / s / "artifacts" / r / "selection.json") for s, r in pairs]
    else:
        paths = [((p.parent.parent.parent.name, p.parent.name), p)
                 for p in sorted(root.glob("*/artifacts/*/selection.json"))]
    for key, path in paths:
        if path.is_file():
            try:
                out[key] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
    return out
