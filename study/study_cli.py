"""`hiddenlab study list|run|show|export`: named Ray Tune studies (one per figure/table)."""

from __future__ import annotations

import argparse
import sys

from hiddenlab.config import ConfigError


def register_study(subparsers) -> None:
    p = subparsers.add_parser(
        "study", help="named Ray Tune studies: one per figure/table of the papers",
        description="Ray Tune sweeps for every figure, on a laptop or a Ray cluster; resumable "
                    "(re-run the same command) and fault tolerant.")
    sub = p.add_subparsers(dest="study_command", required=True, metavar="SUBCOMMAND")

    ls = sub.add_parser("list", help="every study, the figures it feeds, its trials per scale")
    ls.set_defaults(func=_list)

    run = sub.add_parser(
        "run", help="run a study (skips completed trials, resumes interrupted ones)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run.add_argument("name", help="study name (see `hiddenlab study list`)")
    run.add_argument("--scale", default=None,
                     help="smoke (minutes on a laptop) or paper (the recipe, 5 seeds); default: "
                          "the study's own (quickstart: paper, the others: smoke)")
    _storage_arg(run)
    run.add_argument("--address", default=None,
                     help="join a Ray cluster: auto, ray://HOST:PORT or HOST:PORT (default: "
                          "start an embedded local Ray)")
    run.add_argument("--gpus-per-trial", default="0",
                     help="GPUs per trial; a fraction packs several small trials on one GPU")
    run.add_argument("--cpus-per-trial", default="1", help="CPUs per trial")
    run.add_argument("--max-concurrent", default=None, help="at most this many trials at once")
    run.add_argument("--seeds", default=None,
                     help="number of seeds (0..N-1; default: smoke 1, paper 5)")
    run.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="FIELD=VALUE",
                     help="set a TrialConfig field in every trial (repeatable), e.g. "
                          "--set device=cpu --set data_root=/data")
    run.add_argument("--max-failures", default="3",
                     help="retries of a trial after a failure (node loss, OOM), from its last "
                          "checkpoint")
    run.add_argument("--retry-errored", action="store_true",
                     help="run again the trials that failed in an earlier run")
    run.add_argument("--num-cpus", default=None,
                     help="CPUs of the embedded Ray (default: all cores)")
    run.add_argument("--pack", default=None,
                     help="train up to N trials of one architecture per process as one "
                          "vectorised model (default: the study's own, usually 1)")
    run.add_argument("--no-figures", dest="figures", action="store_false",
                     help="quickstart: do not draw figures at the end")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="also Ray Tune's own tables and the trials' logs")
    run.set_defaults(func=_run)

    show = sub.add_parser("show", help="progress and a table of finished trials")
    show.add_argument("name", help="study name")
    _storage_arg(show)
    show.add_argument("--scale", default=None, help="compare with this scale's plan")
    show.add_argument("--seeds", default=None, help="... with this many seeds")
    show.add_argument("--all", action="store_true", help="every trial, not only finished ones")
    show.set_defaults(func=_show)

    ex = sub.add_parser("export", help="(re)write <storage>/<study>/results.parquet")
    ex.add_argument("name", help="study name")
    _storage_arg(ex)
    ex.set_defaults(func=_export)


def _storage_arg(p) -> None:
    from hiddenlab.study.runner import DEFAULT_STORAGE

    p.add_argument("--storage", default=DEFAULT_STORAGE,
                   help="results folder or URI (s3://..., gs://...); on a cluster every node "
                        "must reach it")


# --- argument parsing with ConfigError (names the field) -----------------------------------------
def _number(name: str, text: str | None, kind=float, minimum=None):
    if text is None:
        return None
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise ConfigError(name, f"{text!r} is not a valid {kind.__name__}") from None
    if kind is float and value != value:
        raise ConfigError(name, f"{text!r} is not a number")
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"{text} must be >= {minimum}")
    return value


def _options(args):
    from hiddenlab.study.runner import RunOptions

    return RunOptions(
        scale=args.scale, storage=args.storage, address=args.address,
        gpus_per_trial=_number("gpus_per_trial", args.gpus_per_trial, float, 0),
        cpus_per_trial=_number("cpus_per_trial", args.cpus_per_trial, float, 0),
        max_concurrent=_number("max_concurrent", args.max_concurrent, int, 1),
        seeds=_number("seeds", args.seeds, int, 1),
        overrides=args.overrides, max_failures=_number("max_failures", args.max_failures, int,
                                                       -1),
        retry_errored=args.retry_errored, num_cpus=_number("num_cpus", args.num_cpus, int, 1),
        verbose=0 if args.quiet else (2 if args.verbose else 1),
        figures=args.figures, pack=_number("pack", args.pack, int, 1)).validate()


# --- commands ------------------------------------------------------------------------------------
def _list(args) -> int:
    from hiddenlab.study.registry import NO_TRIALS, studies

    rows = []
    for name, s in studies().items():
        rows.append((name, ", ".join(s.feeds), str(s.count("smoke")), str(s.count("paper")),
                     s.default_scale, s.title))
    head = ("study", "feeds", "smoke", "paper", "default", "what")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(5)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths) + "  {}"
    print(fmt.format(*head))
    for r in rows:
        print(fmt.format(*r))
    print("\ntrials per scale: smoke 1 seed (quickstart smoke 1, paper 2), paper 5 seeds; "
          "--seeds N changes it")
    print("no trials of their own:")
    for name, what in NO_TRIALS.items():
        print(f"  {name}: {what}")
    return 0


def _run(args) -> int:
    from hiddenlab.study.registry import get_study
    from hiddenlab.study.runner import run_study

    study = get_study(args.name)
    summary = run_study(study, _options(args))
    print(f"results: {summary.results}")
    if summary.figures:
        print(f"figures: {summary.figures}")
    return 0 if summary.ok else 1


def _show(args) -> int:
    import pandas as pd

    from hiddenlab.study import export as ex
    from hiddenlab.study.registry import get_study
    from hiddenlab.study.spaces import varying_fields
    from hiddenlab.study.storage import Storage

    study = get_study(args.name)
    storage = Storage(args.storage)
    records = ex.collect(storage, study.name)
    plan = study.plan(args.scale, _number("seeds", args.seeds, int, 1),
                      parent_dir=lambda rid: storage.uri_of(study.name, "checkpoints", rid))
    exps = ex.experiments(storage, study.name)
    print(f"study {study.name}: {study.title}")
    print(f"storage: {storage.uri}/{study.name} ({len(exps)} Ray Tune experiment(s): "
          f"{', '.join(exps) or 'none'})")
    planned = {t.run_id: t for t in plan.trials}
    counts: dict[str, int] = {}
    for rid in planned:
        st = records[rid].status if rid in records else "NOT STARTED"
        counts[st] = counts.get(st, 0) + 1
    done = counts.get("TERMINATED", 0)
    print(f"plan {plan.scale} ({len(plan.seeds)} seed(s)): {done}/{len(planned)} complete — " +
          ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    others = [r for rid, r in records.items() if rid not in planned]
    if others:
        print(f"also in storage: {len(others)} trial(s) of other scales/seeds")
    shown = [r for r in records.values() if args.all or r.status in ("TERMINATED", "ERROR")]
    if not shown:
        print("no finished trials yet")
        return 0
    varying = [f for f in varying_fields(list(plan.trials)) if f not in ("seed", "parent")]
    table = []
    for r in sorted(shown, key=lambda r: r.run_id):
        last = r.results[-1] if r.results else {}
        row = {"run_id": r.run_id, "status": r.status, "series": r.config.get("series")}
        for f in varying:
            row[f] = r.config.get(f)
        row["seed"] = r.config.get("seed")
        row["epochs"] = f"{r.epochs}/{r.config.get('epochs')}"
        for m in ("val_acc", "test_acc", "kept_fraction"):
            row[m] = last.get(m)
        row["wall_s"] = last.get("wall_time_s")
        row["error"] = (r.error or "")[:70]
        table.append(row)
    df = pd.DataFrame(table)
    keys = [c for c in ["series", *varying, "seed"] if c in df.columns and
            not df[c].map(lambda v: isinstance(v, (list, tuple))).any()]
    df = df.sort_values(keys, na_position="first", kind="stable")
    if not df["error"].astype(bool).any():
        df = df.drop(columns=["error"])
    with pd.option_context("display.max_rows", None, "display.max_columns", None,
                           "display.width", 200, "display.float_format", "{:.4f}".format):
        print(df.to_string(index=False))
    return 0


def _export(args) -> int:
    from hiddenlab.study import export as ex
    from hiddenlab.study.registry import get_study

    study = get_study(args.name)
    uri, tab = ex.export(args.storage, study.name)
    print(f"{uri}: {tab.num_rows} rows, "
          f"{len(set(tab.column('run_id').to_pylist()))} trials", file=sys.stdout)
    return 0
