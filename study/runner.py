"""Run a named study on Ray Tune: embedded local Ray, or a cluster; resumable, fault tolerant.

`run_study(study, RunOptions(...))`:
1. validates every option and every trial of the study (TrialConfig) before Ray starts;
2. reads what the storage already holds: completed run ids are skipped (open_lth's habit), an
   interrupted experiment of the same plan is resumed (`Tuner.can_restore` / `Tuner.restore`,
   trials continue from their last checkpoint);
3. runs each phase as one Ray Tune experiment `<storage>/<study>/tune/<scale>-<phase>-<digest>`
   (a grid over run ids, `FailureConfig(max_failures)`, checkpoints every epoch, FIFO);
4. exports `<storage>/<study>/results.parquet` after every phase.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from hiddenlab.study import export as export_mod
from hiddenlab.study import packs
from hiddenlab.config import ConfigError
from hiddenlab.study.registry import Study, get_study
from hiddenlab.study.spaces import SCALES, Plan, PlannedTrial, param_space, parse_overrides
from hiddenlab.study.storage import Storage

DEFAULT_STORAGE = "./results"
OBJECT_STORE_BYTES = 128 * 1024 ** 2   # the object store holds nothing big in a study
_ADDRESS = re.compile(r"^(auto|local|ray://[^\s:/]+(:\d+)?|[^\s:/]+:\d+)$")


@dataclass
class RunOptions:
    scale: str | None = None                   # None: the study's default scale
    storage: str = DEFAULT_STORAGE
    address: str | None = None                 # None: embedded local Ray
    gpus_per_trial: float = 0.0
    cpus_per_trial: float = 1.0
    max_concurrent: int | None = None
    seeds: int | Sequence[int] | None = None   # None: the study's default for the scale
    overrides: Mapping[str, Any] | Sequence[str] | None = None
    max_failures: int = 3
    retry_errored: bool = False
    num_cpus: int | None = None                # embedded Ray only (default: all cores)
    verbose: int = 1                           # 0 quiet, 1 a line per trial, 2 Ray's own output
    figures: bool = True
    pack: int | None = None                    # trials per process (None: the study's `pack`)

    def validate(self) -> "RunOptions":
        if self.scale is not None and self.scale not in SCALES:
            raise ConfigError("scale", f"{self.scale!r} is not one of {', '.join(SCALES)}")
        if self.address is not None:
            if not isinstance(self.address, str) or not _ADDRESS.match(self.address.strip()):
                raise ConfigError("address", f"{self.address!r} is not auto, local, "
                                  "ray://HOST[:PORT] or HOST:PORT")
            port = self.address.rsplit(":", 1)[-1]
            if port.isdigit() and not 0 < int(port) < 65536:
                raise ConfigError("address", f"port {port} is outside 1..65535")
        for name in ("gpus_per_trial", "cpus_per_trial"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < 0:
                raise ConfigError(name, f"{v!r} must be a number >= 0")
        if self.cpus_per_trial <= 0 and self.gpus_per_trial <= 0:
            raise ConfigError("cpus_per_trial", "a trial needs some CPU or GPU (both are 0)")
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise ConfigError("gpus_per_trial", f"{self.gpus_per_trial} > 1 must be a whole "
                              "number (fractions pack several trials on one GPU)")
        if self.max_concurrent is not None and (isinstance(self.max_concurrent, bool) or
                                                not isinstance(self.max_concurrent, int) or
                                                self.max_concurrent < 1):
            raise ConfigError("max_concurrent", f"{self.max_concurrent!r} must be an integer "
                              ">= 1")
        if isinstance(self.seeds, bool) or (isinstance(self.seeds, int) and self.seeds < 1):
            raise ConfigError("seeds", f"{self.seeds!r} must be >= 1")
        if not isinstance(self.max_failures, int) or self.max_failures < -1:
            raise ConfigError("max_failures", f"{self.max_failures!r} must be >= 0 (-1: "
                              "retry forever)")
        if self.num_cpus is not None and (not isinstance(self.num_cpus, int) or
                                          self.num_cpus < 1):
            raise ConfigError("num_cpus", f"{self.num_cpus!r} must be an integer >= 1")
        if self.num_cpus is not None and self.address is not None:
            raise ConfigError("num_cpus", "only for the embedded Ray (no --address)")
        if self.pack is not None and (isinstance(self.pack, bool) or
                                      not isinstance(self.pack, int) or self.pack < 1):
            raise ConfigError("pack", f"{self.pack!r} must be an integer >= 1")
        return self


@dataclass
class RunSummary:
    study: str
    scale: str
    storage: str
    results: str | None
    planned: int
    skipped: int                        # already finished in the storage before this run
    counts: dict[str, int] = field(default_factory=dict)   # status -> trials (planned ones)
    blocked: list[str] = field(default_factory=list)      # children whose parent failed
    wall_s: float = 0.0
    figures: str | None = None

    @property
    def ok(self) -> bool:
        return self.counts.get("TERMINATED", 0) == self.planned


# --- Ray -----------------------------------------------------------------------------------------
def _init_ray(opts: RunOptions) -> bool:
    """Start or join Ray; returns True when this call started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in ("HIDDENLAB_DATA",) if k in os.environ}
    runtime_env = {"env_vars": env} if env else None
    kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=opts.verbose >= 2,
                              runtime_env=runtime_env, configure_logging=True,
                              logging_level="WARNING" if opts.verbose < 2 else "INFO")
    if opts.address in (None, "local"):
        kw.update(num_cpus=opts.num_cpus or os.cpu_count() or 1,
                  object_store_memory=OBJECT_STORE_BYTES)
    else:
        kw["address"] = opts.address.strip()
    try:
        ray.init(**kw)
    except (ConnectionError, RuntimeError) as e:
        if opts.address in (None, "local"):
            raise
        raise ConfigError("address", f"cannot join the Ray cluster at {opts.address}: "
                          f"{str(e).splitlines()[0]}") from None
    return True


def _check_resources(opts: RunOptions) -> None:
    import ray

    res = ray.cluster_resources()
    gpus, cpus = res.get("GPU", 0.0), res.get("CPU", 0.0)
    if opts.gpus_per_trial > 0 and gpus < opts.gpus_per_trial:
        raise ConfigError("gpus_per_trial", f"{opts.gpus_per_trial} GPU per trial, but the Ray "
                          f"cluster has {gpus:g} GPUs")
    if opts.cpus_per_trial > cpus:
        raise ConfigError("cpus_per_trial", f"{opts.cpus_per_trial} CPUs per trial, but the "
                          f"Ray cluster has {cpus:g} CPUs")


def _trial_name(trial) -> str:
    return str(trial.config.get("run_id", trial.trial_id))


class StudyCallback:
    """Ray Tune callback (built lazily to subclass tune.Callback): no retries for trials that
    failed for a reason a retry repeats; one line per finished or failed trial and a progress
    line every `heartbeat_s` (Ray's own tables only with verbose >= 2)."""

    def __new__(cls, total: int, verbose: int = 1, heartbeat_s: float = 30.0):
        from ray import tune

        class _Callback(tune.Callback):
            def __init__(self):
                self.done = self.failed = 0
                self.last_beat = time.time()

            def _say(self, msg: str) -> None:
                if verbose:
                    print(f"[hiddenlab] {msg}", file=sys.stderr, flush=True)

            def on_trial_result(self, iteration, trials, trial, result, **info):
                if result.get("fatal"):
                    trial.max_failures = 0   # should_recover() is False: ERROR, no retry

            def on_trial_complete(self, iteration, trials, trial, **info):
                self.done += 1
                last = trial.last_result or {}
                acc = last.get("test_acc")
                acc = f" test_acc={acc:.4f}" if isinstance(acc, (int, float)) else ""
                self._say(f"{self.done + self.failed}/{total} done: {_trial_name(trial)}{acc}")

            def on_trial_error(self, iteration, trials, trial, **info):
                self.failed += 1
                err = (trial.last_result or {}).get("error") or "see its error.txt"
                self._say(f"{self.done + self.failed}/{total} FAILED: {_trial_name(trial)}: "
                          f"{err}")

            def on_trial_recover(self, iteration, trials, trial, **info):
                self._say(f"retrying {_trial_name(trial)} from its last checkpoint "
                          f"(failure {trial.run_metadata.num_failures})")

            def on_step_end(self, iteration, trials, **info):
                if time.time() - self.last_beat >= heartbeat_s:
                    self.last_beat = time.time()
                    counts: dict[str, int] = {}
                    for t in trials:
                        counts[t.status] = counts.get(t.status, 0) + 1
                    self._say("progress: " + ", ".join(f"{v} {k}" for k, v in
                                                       sorted(counts.items())))

        return _Callback()


# --- the study run -------------------------------------------------------------------------------
def plan_study(study: Study | str, opts: RunOptions) -> tuple[Study, Storage, Plan]:
    """Validate options and expand the study: everything that can be refused before Ray."""
    opts.validate()
    study = get_study(study) if isinstance(study, str) else study
    storage = Storage(opts.storage)
    overrides = parse_overrides(opts.overrides)
    if "data_root" in overrides and overrides["data_root"] and \
            "://" not in overrides["data_root"]:
        overrides["data_root"] = os.path.abspath(os.path.expanduser(overrides["data_root"]))
    plan = study.plan(opts.scale, opts.seeds, overrides,
                      parent_dir=lambda rid: storage.uri_of(study.name, "checkpoints", rid))
    for t in plan.trials:   # what needs the file system (a finetune parent given by path)
        if t.parent_run_id is None:
            t.cfg.method_spec.preflight(t.cfg)
    packs.check(plan, packs.pack_size(study, opts))
    if opts.gpus_per_trial > 0:
        for t in plan.trials:
            if t.cfg.device == "cpu":
                raise ConfigError("device", f"trial {t.run_id} asks for device cpu but "
                                  f"--gpus-per-trial is {opts.gpus_per_trial}")
    return study, storage, plan


def _experiment_name(plan: Plan, phase_index: int) -> str:
    """Named after the whole planned phase: the same command finds the same experiment."""
    phase = plan.phases[phase_index]
    return f"{plan.scale}-{phase.name}-{phase.digest()}"


def _digest(trials: Sequence[PlannedTrial]) -> str:
    import hashlib
    import json

    return hashlib.sha1(json.dumps(sorted(t.run_id for t in trials)).encode()).hexdigest()[:8]


def _restorable(storage: Storage, study: str, name: str) -> bool:
    from ray import tune

    if not storage.exists(study, export_mod.TUNE_DIR, name):
        return False
    return tune.Tuner.can_restore(storage.uri_of(study, export_mod.TUNE_DIR, name),
                                  storage_filesystem=None if storage.local else storage.fs)


def run_study(study: Study | str, opts: RunOptions | None = None) -> RunSummary:
    opts = opts or RunOptions()
    t0 = time.time()
    study, storage, plan = plan_study(study, opts)
    say = (lambda *a: print("[hiddenlab]", *a, file=sys.stderr, flush=True)) if opts.verbose \
        else (lambda *a: None)
    say(f"study {study.name} ({plan.scale}): {len(plan)} trials in {len(plan.phases)} "
        f"phase(s), seeds {plan.seeds}; storage {storage.uri}/{study.name}")

    before = export_mod.collect(storage, study.name)
    finished_before = {rid for rid, r in before.items()
                       if r.status == "TERMINATED" or (r.finished and not opts.retry_errored)}
    skipped = sum(t.run_id in finished_before for t in plan.trials)
    started_ray = False
    blocked: list[str] = []
    try:
        for i, phase in enumerate(plan.phases):
            records = export_mod.collect(storage, study.name) if i else before
            finished = {rid for rid, r in records.items()
                        if r.status == "TERMINATED" or (r.finished and not opts.retry_errored)}
            runnable, waiting = [], []
            for t in phase.trials:
                if t.parent_run_id is not None:
                    parent = records.get(t.parent_run_id)
                    if parent is None or parent.status != "TERMINATED":
                        waiting.append(t)
                        continue
                runnable.append(t)
            blocked += [t.run_id for t in waiting]
            if waiting:
                say(f"phase {phase.name}: {len(waiting)} trial(s) wait for a parent that did "
                    "not complete")
            todo = [t for t in runnable if t.run_id not in finished]
            if not todo:
                say(f"phase {phase.name}: all {len(runnable)} trial(s) already finished")
                continue
            if not started_ray:
                started_ray = _init_ray(opts)
                _check_resources(opts)
            name = packs.experiment_name(_experiment_name(plan, i), packs.pack_size(study, opts))
            if _restorable(storage, study.name, name):
                # Resume the interrupted experiment of this plan; trials it never had (children
                # whose parent has completed since) get an experiment of their own.
                known = {r.run_id for r in export_mod.read_experiment(storage, study.name, name)}
                _run_phase(study, plan, storage, opts, i, name, [], True, say)
                extra = [t for t in todo if t.run_id not in known]
                if extra:
                    extra_name = f"{name}-{_digest(extra)}"
                    _run_phase(study, plan, storage, opts, i, extra_name, extra,
                               _restorable(storage, study.name, extra_name), say)
            else:
                _run_phase(study, plan, storage, opts, i, name, todo, False, say)
            export_mod.export(storage, study.name)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    uri, tab = export_mod.export(storage, study.name)
    summary = _summarize(study, plan, storage, uri, tab, skipped, blocked, time.time() - t0)
    _print_summary(summary, say)
    if opts.figures and study.name == "quickstart" and summary.counts.get("TERMINATED"):
        summary.figures = make_figures(storage, study.name, say)
    return summary


def _run_phase(study: Study, plan: Plan, storage: Storage, opts: RunOptions, index: int,
               name: str, todo: list[PlannedTrial], restorable: bool, say) -> None:
    from ray import tune

    from hiddenlab.study.reporter import make_trainable

    phase = plan.phases[index]
    # Small trials checkpoint every epoch: Tune snapshots its state often then; that is fine.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    resources = {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial}
    size = packs.pack_size(study, opts)
    make = packs.make_trainable if size > 1 else make_trainable
    trainable = tune.with_resources(make(storage.uri, study.name, opts.cpus_per_trial), resources)
    exp_uri = storage.uri_of(study.name, export_mod.TUNE_DIR, name)
    fs = None if storage.local else storage.fs
    if restorable:
        say(f"phase {phase.name}: resuming experiment {name}")
        # Unfinished and errored trials continue from their last checkpoint (a trial that failed
        # for good, e.g. diverged, fails again at once from its marker); --retry-errored starts
        # errored trials from scratch.
        tuner = tune.Tuner.restore(exp_uri, trainable=trainable, resume_unfinished=True,
                                   resume_errored=not opts.retry_errored,
                                   restart_errored=opts.retry_errored, storage_filesystem=fs)
    else:
        if storage.exists(study.name, export_mod.TUNE_DIR, name):
            # A directory Tune cannot restore (killed before its first snapshot): start anew
            # beside it; its trials are found again through their run ids.
            name = f"{name}-{int(time.time())}"
        say(f"phase {phase.name}: {len(todo)} trial(s) to run in experiment {name}" +
            (f", {packs.count(todo, size)} pack(s)" if size > 1 else ""))
        tuner = tune.Tuner(
            trainable,
            param_space=(packs.param_space(todo, study.name, plan.scale, size) if size > 1
                         else param_space(todo, study.name, plan.scale)),
            tune_config=tune.TuneConfig(
                max_concurrent_trials=opts.max_concurrent, reuse_actors=True,
                trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
            run_config=tune.RunConfig(
                name=name, storage_path=storage.uri_of(study.name, export_mod.TUNE_DIR),
                storage_filesystem=fs,
                failure_config=tune.FailureConfig(max_failures=opts.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                callbacks=[StudyCallback(packs.count(todo, size), opts.verbose)],
                verbose=1 if opts.verbose >= 2 else 0),
        )
    tuner.fit()


def _summarize(study, plan, storage, uri, tab, skipped, blocked, wall) -> RunSummary:
    df = tab.select(["run_id", "status"]).to_pandas().drop_duplicates("run_id")
    status = dict(zip(df.run_id, df.status))
    counts: dict[str, int] = {}
    for t in plan.trials:
        s = status.get(t.run_id, "NOT RUN")
        counts[s] = counts.get(s, 0) + 1
    return RunSummary(study.name, plan.scale, storage.uri, uri, len(plan), skipped, counts,
                      blocked, wall)


def _print_summary(s: RunSummary, say) -> None:
    parts = ", ".join(f"{v} {k}" for k, v in sorted(s.counts.items()))
    say(f"study {s.study} ({s.scale}): {parts} of {s.planned} planned "
        f"({s.skipped} already done before this run); {s.wall_s:.0f} s")
    say(f"results: {s.results}")
    say(f"Ray Tune experiments: {s.storage}/{s.study}/{export_mod.TUNE_DIR}/")
    say(f"show progress: hiddenlab study show {s.study} --storage {s.storage}")


def make_figures(storage: Storage, study: str, say) -> str | None:
    """Figures via `hiddenlab analysis figures` when the analysis package is there."""
    import importlib.util

    if importlib.util.find_spec("hiddenlab.analysis.cli") is None:
        say("figures: hiddenlab.analysis is not installed; skipped")
        return None
    out = storage.uri_of(study, "figures")
    try:
        from hiddenlab.cli import main

        code = main(["analysis", "figures", "--results", storage.uri, "--study", study,
                     "--out", out])
    except SystemExit as e:  # no such sub-command in this version
        code = e.code
    except Exception as e:  # figures are a bonus: the study itself succeeded
        say(f"figures: failed ({type(e).__name__}: {e}); results are unaffected")
        return None
    if code:
        say(f"figures: `hiddenlab analysis figures` exited {code}; skipped")
        return None
    say(f"figures: {out}")
    return out
