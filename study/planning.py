"""What `study plan` and `study show` print: a study's trials before it runs (with their cost), and
its progress against that plan once it does."""

from __future__ import annotations

from typing import Any

from hiddenlab.config import ConfigError, field_names

SKIP_COLUMNS = ("seed", "parent")   # every series has seeds; a parent path is long and per run


def _table(rows: list[dict[str, Any]], sort: list[str]) -> str:
    import pandas as pd

    df = pd.DataFrame(rows)
    keys = [c for c in sort if c in df.columns and
            not df[c].map(lambda v: isinstance(v, (list, tuple))).any()]
    if keys:
        df = df.sort_values(keys, na_position="first", kind="stable")
    with pd.option_context("display.max_rows", None, "display.max_columns", None,
                           "display.width", 200, "display.float_format", "{:.4g}".format):
        return df.to_string(index=False)


# --- plan ----------------------------------------------------------------------------------------
def print_plan(name: str, opts, calibrate: bool = True, budget_s: float = 60.0,
               limit: int = 50) -> None:
    from hiddenlab.study import estimate
    from hiddenlab.study.runner import plan_study
    from hiddenlab.study.spaces import varying_fields

    study, storage, plan = plan_study(name, opts)
    n = plan.num_samples
    print(f"study {study.name}: {study.title}" + (f" ({study.source})" if study.source else ""))
    print(f"scale {plan.scale}, seeds {plan.seeds}; {plan.tune.describe()}")
    varying = [f for f in varying_fields(plan.trials) if f not in SKIP_COLUMNS]
    for phase in plan.phases:
        parts = []
        if phase.trials:
            parts.append(f"{len(phase.trials)} planned")
        parts += [f"{s.label!r}: {len(s.points)} grid point(s) x {n} sample(s)"
                  for s in phase.sampled]
        print(f"\nphase {phase.name}: {phase.count(n)} trials ({'; '.join(parts)})")
        if phase.trials:
            shown = phase.trials if not limit else phase.trials[:limit]
            rows = [{"run_id": t.run_id, "series": t.series,
                     **{f: t.cfg.to_dict().get(f) for f in varying}, "seed": t.cfg.seed,
                     "epochs": t.cfg.epochs} for t in shown]
            print(_table(rows, ["series", *varying, "seed"]))
            if len(shown) < len(phase.trials):
                print(f"... and {len(phase.trials) - len(shown)} more (--limit 0: all)")
        for s in phase.sampled:
            axes = ", ".join(f"{k} in {v}" for k, v in s.axes.items())
            draws = ", ".join(f"{k} ~ {d.describe()}" for k, d in s.sample.items())
            print(f"  series {s.label!r} ({s.probe.method}, {s.probe.model}, {s.probe.epochs} "
                  f"epochs): {draws}" + (f"; grid {axes}" if axes else "") +
                  f"; {len(s.points)} point(s) x {n} = {s.count(n)} trials; run ids are known "
                  "once Tune draws")
    print(f"\ntotal: {len(plan)} trials")
    total, kinds, notes = estimate.estimate(plan, storage, calibrate, budget_s,
                                            threads=max(1, int(opts.cpus_per_trial)))
    stops = plan.tune.scheduler not in ("fifo", "pbt")
    print("\n".join(estimate.lines(total, kinds, notes, opts, stops)))


# --- show ----------------------------------------------------------------------------------------
def show(study, name: str, storage_uri: str, scale: str | None, seeds: int | None,
         every: bool) -> int:
    """Progress of the study in the storage against its plan at `scale` (no plan when only the
    storage knows the study), and a table of its finished (or, `every`, all) trials."""
    from hiddenlab.study import export as ex
    from hiddenlab.study.runner import DONE, sampled_prefix
    from hiddenlab.study.spaces import varying_fields
    from hiddenlab.study.storage import Storage

    storage = Storage(storage_uri)
    records = ex.collect(storage, name)
    exps = ex.experiments(storage, name)
    print(f"study {name}: {study.title if study else '(defined in a script: no plan here)'}")
    print(f"storage: {storage.uri}/{name} ({len(exps)} Ray Tune experiment(s): "
          f"{', '.join(exps) or 'none'})")
    planned: dict[str, Any] = {}
    varying: list[str] = []
    if study is not None:
        plan = study.plan(scale, seeds,
                          parent_dir=lambda rid: storage.uri_of(name, "checkpoints", rid))
        planned = {t.run_id: t for t in plan.trials}
        # a sampling series' trials: those of its experiments at this scale (any draws)
        sampled = {sampled_prefix(plan, s): s for s in plan.sampled}
        counts: dict[str, int] = {}
        for rid in planned:
            st = records[rid].status if rid in records else "NOT STARTED"
            counts[st] = counts.get(st, 0) + 1
        for exp, s in sampled.items():
            mine = [r for r in records.values() if r.experiment.startswith(exp)]
            for r in mine:
                counts[r.status] = counts.get(r.status, 0) + 1
            left = s.count(plan.num_samples) - len(mine)
            if left > 0:
                counts["NOT STARTED"] = counts.get("NOT STARTED", 0) + left
            planned.update({r.run_id: None for r in mine})
        done = sum(counts.get(s, 0) for s in DONE)
        print(f"plan {plan.scale} ({len(plan.seeds)} seed(s)): {done}/{len(plan)} complete — " +
              ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        others = [r for rid, r in records.items() if rid not in planned]
        if others:
            print(f"also in storage: {len(others)} trial(s) of other scales/seeds")
        varying = [f for f in varying_fields(plan.trials) if f not in SKIP_COLUMNS]
    else:
        counts = {}
        for r in records.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        print(f"{len(records)} trial(s): " +
              ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    shown = [r for r in records.values()
             if every or r.status in ("TERMINATED", "STOPPED", "ERROR")]
    for v in _varying_in(shown):
        if v not in varying and v not in SKIP_COLUMNS:
            varying.append(v)
    rows = [_row(r, varying) for r in sorted(shown, key=lambda r: r.run_id)]
    if every and study is not None:
        rows += [{"run_id": rid, "status": "NOT STARTED", "series": t.series,
                  **{f: t.cfg.to_dict().get(f) for f in varying}, "seed": t.cfg.seed,
                  "epochs": f"0/{t.cfg.epochs}"}
                 for rid, t in sorted(planned.items()) if t is not None and rid not in records]
    if not rows:
        print("no finished trials yet")
        return 0
    import pandas as pd

    if not any(row.get("error") for row in rows):
        for row in rows:
            row.pop("error", None)
    print(_table(rows, ["series", *varying, "seed"]) if len(pd.DataFrame(rows)) else "")
    return 0


def _varying_in(records) -> list[str]:
    """Fields that differ between these trials (sampled trials, which no plan lists)."""

    out = []
    for f in field_names():
        values = {repr(r.config.get(f)) for r in records}
        if len(values) > 1:
            out.append(f)
    return out


def _row(r, varying: list[str]) -> dict[str, Any]:
    last = r.results[-1] if r.results else {}
    row = {"run_id": r.run_id, "status": r.status, "series": r.config.get("series")}
    for f in varying:
        row[f] = r.config.get(f)
    row["seed"] = r.config.get("seed")
    row["epochs"] = f"{r.epochs}/{r.config.get('epochs')}"
    for m in ("val_acc", "test_acc", "kept_fraction"):
        row[m] = last.get(m)
    row["wall_s"] = last.get("wall_time_s")
    row.update(_network_sizes(r.config))
    row["error"] = (r.error or "")[:70]
    return row


def _network_sizes(config: dict) -> dict:
    """A trial's exported network size and its float32 weights' (from its config alone)."""
    from hiddenlab.study.netexport import export_size, human_bytes

    try:
        size = export_size(config)
    except (ConfigError, KeyError):  # a config this version no longer builds
        return {"export": None, "float32": None}
    return {"export": human_bytes(size.export_bytes), "float32": human_bytes(size.float32_bytes)}
