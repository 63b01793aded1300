"""`hiddenlab study list|plan|run|show|export`: built-in studies (one per figure/table) and study
files of your own (`PATH.yaml`, `PATH.py`), on Ray Tune."""

from __future__ import annotations

import argparse
import sys

from hiddenlab.config import ConfigError

STUDY_HELP = ("study name (see `hiddenlab study list`), a study file (PATH.yaml, PATH.py), or "
              "the name of a study file run before into --storage")


def register_study(subparsers) -> None:
    p = subparsers.add_parser(
        "study", help="Ray Tune studies: the papers' figures, or a study file of your own",
        description="Ray Tune sweeps for every figure, or for a study file of your own "
                    "(PATH.yaml / PATH.py), on a laptop or a Ray cluster; resumable (re-run the "
                    "same command) and fault tolerant.")
    sub = p.add_subparsers(dest="study_command", required=True, metavar="SUBCOMMAND")

    ls = sub.add_parser("list", help="every study, the figures it feeds, its trials per scale")
    ls.set_defaults(func=_list)

    plan = sub.add_parser(
        "plan", help="the trials a run would make, counts per phase, and their cost",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Print the trials (run id, series, the fields that vary), counts per phase "
                    "and an estimate of trial-epochs and wall time per device kind (from earlier "
                    "results in --storage, else measured here in a few training steps). Nothing "
                    "is run or written.")
    plan.add_argument("name", help=STUDY_HELP)
    _common_args(plan)
    plan.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                      help="do not measure trials that have no earlier results")
    plan.add_argument("--calibration-budget", default="60",
                      help="seconds at most spent measuring")
    plan.add_argument("--limit", default="50", help="trials listed per phase (0: all)")
    plan.set_defaults(func=_plan)

    run = sub.add_parser(
        "run", help="run a study (skips completed trials, resumes interrupted ones)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run.add_argument("name", help=STUDY_HELP)
    _common_args(run)
    run.add_argument("--address", default=None,
                     help="join a Ray cluster: auto, ray://HOST:PORT or HOST:PORT (default: "
                          "start an embedded local Ray)")
    run.add_argument("--max-failures", default="3",
                     help="retries of a trial after a failure (node loss, OOM), from its last "
                          "checkpoint")
    run.add_argument("--retry-errored", action="store_true",
                     help="run again the trials that failed in an earlier run")
    run.add_argument("--pack", default=None,
                     help="train up to N trials of one architecture per process as one "
                          "vectorised model (default: the study's own, usually 1)")
    run.add_argument("--no-figures", dest="figures", action="store_false",
                     help="do not draw figures at the end (quickstart and study files)")
    run.add_argument("--progress-every", default="30",
                     help="seconds between progress lines (done / running / left, ETA)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="also Ray Tune's own tables and the trials' logs")
    run.set_defaults(func=_run)

    show = sub.add_parser("show", help="progress and a table of finished trials")
    show.add_argument("name", help=STUDY_HELP)
    _storage_arg(show)
    show.add_argument("--scale", default=None, help="compare with this scale's plan")
    show.add_argument("--seeds", default=None, help="... with this many seeds")
    show.add_argument("--all", action="store_true",
                      help="every trial (running, pending, not started), not only finished ones")
    show.set_defaults(func=_show)

    ex = sub.add_parser("export", help="(re)write <storage>/<study>/results.parquet")
    ex.add_argument("name", help=STUDY_HELP)
    _storage_arg(ex)
    ex.add_argument("--networks", metavar="DIR", default=None,
                    help="also write every finished trial's network to DIR/<run_id>.hlnet "
                         "(`hiddenlab export`: seed + selection bits; `hiddenlab.load` reads it)")
    ex.set_defaults(func=_export)


def _storage_arg(p) -> None:
    from hiddenlab.study.runner import DEFAULT_STORAGE

    p.add_argument("--storage", default=DEFAULT_STORAGE,
                   help="results folder or URI (s3://..., gs://...); on a cluster every node "
                        "must reach it")


def _common_args(p) -> None:
    """What `plan` and `run` share: the plan (scale, seeds, --set), resources, Tune settings."""
    p.add_argument("--scale", default=None,
                   help="smoke (minutes on a laptop) or paper (the recipe; for a study file: the "
                        "file as written); default: the study's own")
    _storage_arg(p)
    p.add_argument("--seeds", default=None,
                   help="number of seeds (0..N-1; default: the study's, e.g. smoke 1, paper 5)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="FIELD=VALUE",
                   help="set a TrialConfig field in every trial (repeatable), e.g. "
                        "--set device=cpu --set data_root=/data")
    p.add_argument("--gpus-per-trial", default="0",
                   help="GPUs per trial; a fraction packs several small trials on one GPU")
    p.add_argument("--cpus-per-trial", default="1", help="CPUs per trial")
    p.add_argument("--num-cpus", default=None,
                   help="CPUs of the embedded Ray (default: all cores)")
    t = p.add_argument_group("Ray Tune (default: the study's own settings)")
    t.add_argument("--num-samples", default=None,
                   help="draws per grid point of every series that samples fields")
    t.add_argument("--search", default=None, help="random (= grid), optuna, hyperopt")
    t.add_argument("--search-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="search algorithm option (repeatable), e.g. seed=0")
    t.add_argument("--scheduler", default=None,
                   help="fifo, asha, hyperband, pbt, median (median stopping)")
    t.add_argument("--scheduler-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="scheduler option (repeatable), e.g. grace_period=1 reduction_factor=2")
    t.add_argument("--metric", default=None,
                   help="metric the search and scheduler compare (default val_acc)")
    t.add_argument("--mode", default=None, help="max or min (default: by the metric)")
    t.add_argument("--max-concurrent", default=None, help="at most this many trials at once")
    t.add_argument("--callback", dest="callbacks", action="append", default=[],
                   metavar="NAME", help="logger callback (repeatable): csv, tensorboard, mlflow "
                                        "(local tracking URI), wandb (offline)")


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


def _key_values(name: str, items: list[str]) -> dict:
    """["grace_period=1", "reduction_factor=2"] -> {...}, values read as YAML (numbers, lists)."""
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(name, f"{item!r} is not KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _options(args):
    from hiddenlab.study.runner import RunOptions

    return RunOptions(
        scale=args.scale, storage=args.storage, address=getattr(args, "address", None),
        gpus_per_trial=_number("gpus_per_trial", args.gpus_per_trial, float, 0),
        cpus_per_trial=_number("cpus_per_trial", args.cpus_per_trial, float, 0),
        max_concurrent=_number("max_concurrent", args.max_concurrent, int, 1),
        seeds=_number("seeds", args.seeds, int, 1),
        overrides=args.overrides,
        max_failures=_number("max_failures", getattr(args, "max_failures", "3"), int, -1),
        retry_errored=getattr(args, "retry_errored", False),
        num_cpus=_number("num_cpus", args.num_cpus, int, 1),
        verbose=0 if getattr(args, "quiet", False) else (2 if getattr(args, "verbose", False)
                                                         else 1),
        figures=getattr(args, "figures", True),
        num_samples=_number("num_samples", args.num_samples, int, 1),
        search=args.search, search_options=_key_values("search", args.search_opt),
        scheduler=args.scheduler,
        scheduler_options=_key_values("scheduler", args.scheduler_opt),
        metric=args.metric, mode=args.mode, callbacks=args.callbacks or None,
        heartbeat_s=_number("progress_every", getattr(args, "progress_every", "30"), float, 1),
        pack=_number("pack", getattr(args, "pack", None), int, 1),
    ).validate()


def _resolve(name: str, storage: str):
    """(the Study, or None for a study only the storage knows, e.g. one built in a script),
    its name."""
    from hiddenlab.study import export as ex
    from hiddenlab.study.registry import get_study
    from hiddenlab.study.storage import Storage

    try:
        study = get_study(name, storage)
        return study, study.name
    except ConfigError:
        st = Storage(storage)
        if "/" not in name and st.is_dir(name, ex.TUNE_DIR):
            return None, name
        raise


def _existing(path: str):
    """The storage of a study that ran: a folder (or URI) that exists."""
    from hiddenlab.study.storage import Storage

    storage = Storage(path)
    if not storage.exists():
        raise ConfigError("storage", f"{storage.uri} does not exist")
    return storage


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
    print("\nyour own study: hiddenlab study plan|run PATH.yaml (or PATH.py); see the README, "
          "\"Your own study\"")
    return 0


def _plan(args) -> int:
    from hiddenlab.study.planning import print_plan

    print_plan(args.name, _options(args), calibrate=args.calibrate,
               budget_s=_number("calibration_budget", args.calibration_budget, float, 0),
               limit=_number("limit", args.limit, int, 0))
    return 0


def _run(args) -> int:
    from hiddenlab.study.runner import run_study

    summary = run_study(args.name, _options(args))
    print(f"results: {summary.results}")
    if summary.figures:
        print(f"figures: {summary.figures}")
    return 0 if summary.ok else 1


def _show(args) -> int:
    from hiddenlab.study.planning import show

    seeds = _number("seeds", args.seeds, int, 1)
    study, name = _resolve(args.name, args.storage)
    _existing(args.storage)
    return show(study, name, args.storage, args.scale, seeds, args.all)


def _export(args) -> int:
    from hiddenlab.study import export as ex

    _, name = _resolve(args.name, args.storage)
    storage = _existing(args.storage)
    if not storage.exists(name):
        raise ConfigError("storage", f"{storage.uri} holds no study {name} (nothing to export)")
    uri, tab = ex.export(storage, name)
    print(f"{uri}: {tab.num_rows} rows, "
          f"{len(set(tab.column('run_id').to_pylist()))} trials", file=sys.stdout)
    if args.networks:
        _export_networks(args.storage, name, args.networks)
    return 0


# --- exported networks (hiddenlab export) -------------------------------------------------------
def _export_networks(storage: str, study: str, out: str) -> None:
    from hiddenlab.study.netexport_cli import export_study

    rows = export_study(storage, study, out)
    total = sum(r["bytes"] for r in rows)
    print(f"{out}: {len(rows)} network(s), {total:,} bytes (float32: "
          f"{sum(r['float32_bytes'] for r in rows):,})")

