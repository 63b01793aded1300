"""Run a study on Ray Tune: embedded local Ray, or a cluster; resumable, fault tolerant.

`run_study(study, RunOptions(...))`:
1. validates every option, every trial of the study (TrialConfig) and every sampled field's
   distribution, and builds the Tune search algorithm, scheduler and callbacks before Ray starts
   (`plan_study` checks the trials, `preflight.check_study` what a run needs);
2. reads what the storage already holds: completed (or early-stopped) run ids are skipped
   (open_lth's habit), an interrupted experiment of the same plan is resumed
   (`Tuner.can_restore` / `Tuner.restore`, trials continue from their last checkpoint);
3. runs each phase's grid trials as one Ray Tune experiment
   `<storage>/<study>/tune/<scale>-<phase>-<digest>` (a grid over run ids, checkpoints every
   epoch), and each series that samples fields as an experiment of its own
   (`<scale>-<phase>-<series>-<digest>`: `num_samples` draws per grid point by the study's search
   algorithm), under the study's scheduler (`TuneConfig(search_alg, scheduler, num_samples,
   metric, mode, max_concurrent_trials)`, `RunConfig(callbacks)`);
4. exports `<storage>/<study>/results.parquet` after every phase; a study file's copy is kept
   beside it, and its figures are drawn at the end.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from hiddenlab.config import ConfigError
from hiddenlab.study import export as export_mod
from hiddenlab.study import packs, preflight
from hiddenlab.study.registry import Study, get_study
from hiddenlab.study.spaces import (SCALES, Plan, PlannedTrial, SampledSeries, param_space,
                                    parse_overrides, sampled_space)
from hiddenlab.study.storage import Storage
from hiddenlab.study.tuning import TuneSettings

DEFAULT_STORAGE = "./results"
OBJECT_STORE_BYTES = 128 * 1024 ** 2   # the object store holds nothing big in a study
_ADDRESS = re.compile(r"^(auto|local|ray://[^\s:/]+(:\d+)?|[^\s:/]+:\d+)$")
DONE = ("TERMINATED", "STOPPED")       # nothing more to run, and not a failure


@dataclass
class RunOptions:
    scale: str | None = None                   # None: the study's default scale
    storage: str = DEFAULT_STORAGE
    address: str | None = None                 # None: embedded local Ray
    gpus_per_trial: float = 0.0
    cpus_per_trial: float = 1.0
    max_concurrent: int | None = None          # None: the study's max_concurrent_trials
    seeds: int | Sequence[int] | None = None   # None: the study's default for the scale
    overrides: Mapping[str, Any] | Sequence[str] | None = None
    max_failures: int = 3
    retry_errored: bool = False
    num_cpus: int | None = None                # embedded Ray only (default: all cores)
    verbose: int = 1                           # 0 quiet, 1 a line per trial, 2 Ray's own output
    figures: bool = True
    # Ray Tune settings over the study's own (None: the study's)
    num_samples: int | None = None
    search: str | None = None
    search_options: Mapping[str, Any] | None = None
    scheduler: str | None = None
    scheduler_options: Mapping[str, Any] | None = None
    metric: str | None = None
    mode: str | None = None
    callbacks: Sequence[str] | None = None
    heartbeat_s: float = 30.0                  # seconds between progress lines
    pack: int | None = None                    # trials per process (None: the study's `pack`)

    def tune_settings(self, study: Study) -> TuneSettings:
        """The study's Tune settings with these options over them, validated."""
        return study.tune.merged(
            num_samples=self.num_samples, search=self.search,
            search_options=dict(self.search_options) if self.search_options else None,
            scheduler=self.scheduler,
            scheduler_options=dict(self.scheduler_options) if self.scheduler_options else None,
            metric=self.metric, mode=self.mode, max_concurrent_trials=self.max_concurrent,
            callbacks=list(self.callbacks) if self.callbacks else None).validate()

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
        """Every planned trial ran to its end or was stopped early by the scheduler."""
        return sum(self.counts.get(s, 0) for s in DONE) == self.planned


# --- Ray -----------------------------------------------------------------------------------------
def _init_ray(opts: RunOptions) -> bool:
    """Start or join Ray; returns True when this call started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    # Trials see the driver's data root and plug-ins (a method, model or data set of the user's
    # own, imported by every process through $HIDDENLAB_PLUGINS from $PYTHONPATH).
    env = {k: os.environ[k] for k in ("HIDDENLAB_DATA", "HIDDENLAB_PLUGINS", "PYTHONPATH")
           if k in os.environ}
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
    return str(trial.config.get("run_id") or trial.trial_id)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


class Progress:
    """What a study's experiment has done and has left: trials done / running / left and an ETA
    from the epoch times measured so far (remaining trial-epochs x mean epoch time, shared by
    the trials running at once)."""

    def __init__(self, total: int, epochs: int):
        self.total, self.epochs = total, epochs   # planned trials; epochs of a trial
        self.epoch_times: list[float] = []
        self.done_epochs: dict[str, int] = {}

    def result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        if isinstance(result.get("epoch"), int):
            self.done_epochs[trial_id] = result["epoch"]
        t = result.get("epoch_time_s")
        if isinstance(t, (int, float)) and t == t:
            self.epoch_times.append(float(t))

    def line(self, trials) -> str:
        ended = {"TERMINATED", "ERROR"}
        done = sum(t.status in ended for t in trials)
        running = sum(t.status == "RUNNING" for t in trials)
        left = max(self.total - done - running, 0)
        msg = f"{done}/{self.total} done, {running} running, {left} left"
        if not self.epoch_times:
            return msg
        remaining = sum(max(_epochs_of(t, self.epochs) - self.done_epochs.get(t.trial_id, 0), 0)
                        for t in trials if t.status not in ended)
        remaining += max(self.total - len(trials), 0) * self.epochs   # not created yet
        per_epoch = sum(self.epoch_times) / len(self.epoch_times)
        eta = remaining * per_epoch / max(running, 1)
        return f"{msg}; {per_epoch:.2f} s/epoch, ETA {_duration(eta)}"


def _epochs_of(trial, default: int) -> int:
    e = trial.config.get("epochs")
    return e if isinstance(e, int) else default


class StudyCallback:
    """Ray Tune callback (built lazily to subclass tune.Callback): no retries for trials that
    failed for a reason a retry repeats; one line per finished, stopped or failed trial and a
    progress line (done / running / left, ETA) every `heartbeat_s` (Ray's own tables only with
    verbose >= 2)."""

    def __new__(cls, total: int, verbose: int = 1, heartbeat_s: float = 30.0, epochs: int = 1,
                label: str = ""):
        from ray import tune

        prefix = f"{label}: " if label else ""

        class _Callback(tune.Callback):
            def __init__(self):
                self.finished = 0
                self.last_beat = time.time()
                self.progress = Progress(total, epochs)

            def _say(self, msg: str) -> None:
                if verbose:
                    print(f"[hiddenlab] {prefix}{msg}", file=sys.stderr, flush=True)

            def on_trial_result(self, iteration, trials, trial, result, **info):
                if result.get("fatal"):
                    trial.max_failures = 0   # should_recover() is False: ERROR, no retry
                self.progress.result(trial.trial_id, result)

            def on_trial_complete(self, iteration, trials, trial, **info):
                self.finished += 1
                last = trial.last_result or {}
                acc = last.get("test_acc")
                if isinstance(acc, (int, float)):
                    what = f"done: {_trial_name(trial)} test_acc={acc:.4f}"
                else:   # ended by the scheduler before its last epoch
                    what = (f"stopped by the scheduler at epoch {last.get('epoch')}: "
                            f"{_trial_name(trial)}")
                self._say(f"{self.finished}/{total} {what}")

            def on_trial_error(self, iteration, trials, trial, **info):
                self.finished += 1
                err = (trial.last_result or {}).get("error") or "see its error.txt"
                self._say(f"{self.finished}/{total} FAILED: {_trial_name(trial)}: {err}")

            def on_trial_recover(self, iteration, trials, trial, **info):
                self._say(f"retrying {_trial_name(trial)} from its last checkpoint "
                          f"(failure {trial.run_metadata.num_failures})")

            def on_step_end(self, iteration, trials, **info):
                if time.time() - self.last_beat >= heartbeat_s:
                    self.last_beat = time.time()
                    self._say("progress: " + self.progress.line(trials))

        return _Callback()


# --- the study run -------------------------------------------------------------------------------
def plan_study(study: Study | str, opts: RunOptions) -> tuple[Study, Storage, Plan]:
    """Validate options and expand the study: everything that can be refused before Ray."""
    opts.validate()
    study = get_study(study, opts.storage) if isinstance(study, str) else study
    storage = Storage(opts.storage)
    try:
        settings = opts.tune_settings(study)
    except ConfigError as e:
        raise _named_source(e, study) from None
    overrides = parse_overrides(opts.overrides)
    if "data_root" in overrides and overrides["data_root"] and \
            "://" not in overrides["data_root"]:
        overrides["data_root"] = os.path.abspath(os.path.expanduser(overrides["data_root"]))
    plan = study.plan(opts.scale, opts.seeds, overrides,
                      parent_dir=lambda rid: storage.uri_of(study.name, "checkpoints", rid),
                      num_samples=settings.num_samples)
    plan.tune = settings
    try:
        check_tune(plan, settings)
    except ConfigError as e:
        raise _named_source(e, study) from None
    _check_plan(study, plan, opts)
    return study, storage, plan


def _named_source(e: ConfigError, study: Study) -> ConfigError:
    """The error, naming the study file it comes from."""
    if not study.source or study.source in str(e):
        return e
    return ConfigError(e.field, f"{str(e).split(': ', 1)[-1]} (in {study.source})")


def _check_plan(study: Study, plan: Plan, opts: RunOptions) -> None:
    """What the trials' methods check (a finetune parent given by path) and their devices, from
    `plan_study`, so `study plan` and `study run` both make them; `preflight.check_study` adds
    what only a run needs (data, storage, the Ray address)."""
    for t in plan.trials:   # what needs the file system (a finetune parent given by path)
        if t.parent_run_id is None:
            t.cfg.method_spec.preflight(t.cfg)
    for s in plan.sampled:
        s.probe.method_spec.preflight(s.probe)
    size = packs.pack_size(study, opts)
    packs.check(plan, size)
    if size > 1 and plan.tune.scheduler not in ("fifo", None):
        raise ConfigError("pack", f"{size}: a pack trains several trials as one Tune trial, so "
                          f"scheduler {plan.tune.scheduler} cannot stop them one by one; "
                          "use --pack 1 (or scheduler fifo)")
    if opts.gpus_per_trial > 0:
        cfgs = [(t.run_id, t.cfg) for t in plan.trials] + \
            [(f"series {s.label!r}", s.probe) for s in plan.sampled]
        for name, cfg in cfgs:
            if cfg.device == "cpu":
                raise ConfigError("device", f"trial {name} asks for device cpu but "
                                  f"--gpus-per-trial is {opts.gpus_per_trial}")


def check_tune(plan: Plan, settings: TuneSettings) -> None:
    """What the Tune settings ask of the study: sampled fields for num_samples > 1 and for
    model-based searchers (which draw every point themselves: no grid), a scheduler every
    experiment can build (its max_t from the trials' epochs)."""
    if settings.num_samples > 1 and not plan.sampled:
        raise ConfigError("num_samples", f"{settings.num_samples}: no series samples a field, "
                          "so every draw would repeat the grid (more seeds: --seeds)")
    if settings.samples_by_model:
        if not plan.sampled:
            raise ConfigError("search", f"{settings.search} searches sampled fields; no series "
                              "samples one (give `sample:` distributions)")
        for s in plan.sampled:
            if len(s.points) > 1:
                grid = [*s.axes, *(["seed"] if len({p.get("seed") for p in s.points}) > 1
                                   else [])]
                raise ConfigError("search", f"{settings.search} draws every point itself, but "
                                  f"series {s.label!r} has a grid over {', '.join(grid)}: sample "
                                  "those fields too (choice) with one seed, or search random")
    for phase in plan.phases:
        if phase.trials and settings.scheduler != "pbt":
            settings.make_scheduler(max(t.cfg.epochs for t in phase.trials))
        for s in phase.sampled:
            settings.make_scheduler(s.probe.epochs, {k: v.tune() for k, v in s.sample.items()})


def _experiment_name(plan: Plan, phase_index: int) -> str:
    """Named after the whole planned phase: the same command finds the same experiment."""
    phase = plan.phases[phase_index]
    return f"{plan.scale}-{phase.name}-{phase.digest()}"


def sampled_prefix(plan: Plan, series: SampledSeries) -> str:
    """What every experiment of a sampling series is named with (whatever its draws)."""
    slug = re.sub(r"[^0-9A-Za-z]+", "-", series.label).strip("-").lower() or "series"
    return f"{plan.scale}-{series.phase}-{slug}-"


def _sampled_name(plan: Plan, series: SampledSeries) -> str:
    """The series' experiment for exactly this plan (its grid, distributions, num_samples)."""
    return f"{sampled_prefix(plan, series)}{series.digest()}x{plan.num_samples}"


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


def _finished(records: Mapping[str, export_mod.TrialRecord], retry_errored: bool) -> set[str]:
    return {rid for rid, r in records.items()
            if r.status in DONE or (r.finished and not retry_errored)}


@dataclass
class _Run:
    """One `run_study` call: the study, where it writes, and how it talks."""

    study: Study
    storage: Storage
    plan: Plan
    opts: RunOptions
    say: Any
    started_ray: bool = False

    def ray(self) -> None:
        if not self.started_ray:
            self.started_ray = _init_ray(self.opts)
            _check_resources(self.opts)


def run_study(study: Study | str, opts: RunOptions | None = None) -> RunSummary:
    opts = opts or RunOptions()
    t0 = time.time()
    study, storage, plan = plan_study(study, opts)
    preflight.check_study(storage, plan, opts)  # data, folders, address: before Ray starts
    say = (lambda *a: print("[hiddenlab]", *a, file=sys.stderr, flush=True)) if opts.verbose \
        else (lambda *a: None)
    say(f"study {study.name} ({plan.scale}): {len(plan)} trials in {len(plan.phases)} "
        f"phase(s), seeds {plan.seeds}; {plan.tune.describe()}; storage "
        f"{storage.uri}/{study.name}")
    from hiddenlab.study import studyfile

    studyfile.keep(study, storage)
    before = export_mod.collect(storage, study.name)
    finished_before = _finished(before, opts.retry_errored)
    skipped = sum(t.run_id in finished_before for t in plan.trials)
    run = _Run(study, storage, plan, opts, say)
    blocked: list[str] = []
    try:
        for i, phase in enumerate(plan.phases):
            records = export_mod.collect(storage, study.name) if i else before
            blocked += _grid_phase(run, i, records)
            for series in phase.sampled:
                skipped += _sampled_series(run, series)
            export_mod.export(storage, study.name)
    finally:
        if run.started_ray:
            import ray

            ray.shutdown()
    uri, tab = export_mod.export(storage, study.name)
    summary = _summarize(run, uri, tab, skipped, blocked, time.time() - t0)
    _print_summary(summary, say)
    drawn = study.name == "quickstart" or not study.builtin
    if opts.figures and drawn and any(summary.counts.get(s) for s in DONE):
        summary.figures = make_figures(storage, study.name, say)
    return summary


def _grid_phase(run: _Run, i: int, records: Mapping[str, export_mod.TrialRecord]) -> list[str]:
    """The phase's planned trials: skip finished ones, resume an interrupted experiment, run the
    rest. Returns the children that wait for a parent that did not complete."""
    phase, say = run.plan.phases[i], run.say
    if not phase.trials:
        return []
    finished = _finished(records, run.opts.retry_errored)
    runnable, waiting = [], []
    for t in phase.trials:
        if t.parent_run_id is not None:
            parent = records.get(t.parent_run_id)
            if parent is None or parent.status != "TERMINATED":
                waiting.append(t)
                continue
        runnable.append(t)
    if waiting:
        say(f"phase {phase.name}: {len(waiting)} trial(s) wait for a parent that did not "
            "complete")
    todo = [t for t in runnable if t.run_id not in finished]
    if not todo:
        say(f"phase {phase.name}: all {len(runnable)} trial(s) already finished")
        return [t.run_id for t in waiting]
    run.ray()
    size = packs.pack_size(run.study, run.opts)
    name = packs.experiment_name(_experiment_name(run.plan, i), size)
    epochs = max(t.cfg.epochs for t in phase.trials)
    if _restorable(run.storage, run.study.name, name):
        # Resume the interrupted experiment of this plan; trials it never had (children whose
        # parent has completed since) get an experiment of their own.
        known = {r.run_id for r in export_mod.read_experiment(run.storage, run.study.name, name)}
        _fit(run, name, None, True, packs.count(todo, size), epochs, f"phase {phase.name}",
             size)
        extra = [t for t in todo if t.run_id not in known]
        if extra:
            extra_name = f"{name}-{_digest(extra)}"
            _fit(run, extra_name, _grid_space(run, extra, size),
                 _restorable(run.storage, run.study.name, extra_name), packs.count(extra, size),
                 epochs, f"phase {phase.name}", size)
    else:
        _fit(run, name, _grid_space(run, todo, size), False, packs.count(todo, size), epochs,
             f"phase {phase.name}", size)
    return [t.run_id for t in waiting]


def _grid_space(run: _Run, todo: list[PlannedTrial], size: int = 1) -> dict:
    settings, study, scale = run.plan.tune, run.study.name, run.plan.scale
    scheduler = settings.make_scheduler(max(t.cfg.epochs for t in todo)) \
        if settings.scheduler != "pbt" else None   # PBT mutates sampled fields only
    space = packs.param_space(todo, study, scale, size) if size > 1 else \
        param_space(todo, study, scale)
    return dict(space=space, searcher=None,
                scheduler=scheduler, num_samples=1, derive=None)


def _sampled_series(run: _Run, series: SampledSeries) -> int:
    """A sampling series as its own experiment: skipped when it has every trial finished or
    stopped, resumed when interrupted. Returns how many of its trials were done before."""
    name = _sampled_name(run.plan, series)
    expected = series.count(run.plan.num_samples)
    label = f"series {series.label!r}"
    recs = export_mod.read_experiment(run.storage, run.study.name, name) \
        if run.storage.exists(run.study.name, export_mod.TUNE_DIR, name) else []
    done = _finished({f"{r.trial_id}": r for r in recs}, run.opts.retry_errored)
    if len(recs) >= expected and len(done) >= expected:
        run.say(f"{label}: all {expected} trial(s) already finished")
        return expected
    run.ray()
    settings = run.plan.tune
    if _restorable(run.storage, run.study.name, name):
        _fit(run, name, None, True, expected, series.probe.epochs, label)
    else:
        space = dict(space=sampled_space(series, run.study.name, run.plan.scale),
                     searcher=settings.make_searcher(),
                     scheduler=settings.make_scheduler(
                         series.probe.epochs, {k: v.tune() for k, v in series.sample.items()}),
                     num_samples=run.plan.num_samples, derive=series.derive)
        _fit(run, name, space, False, expected, series.probe.epochs, label)
    return len(done)


def _fit(run: _Run, name: str, space: dict | None, restorable: bool, total: int, epochs: int,
         label: str, pack: int = 1) -> None:
    """One Ray Tune experiment: a new Tuner over `space`, or the interrupted one restored;
    with `pack` > 1 its Tune trials are packs of trials (`study/packs.py`)."""
    from ray import tune

    from hiddenlab.study.reporter import make_trainable

    opts, storage, study, settings = run.opts, run.storage, run.study, run.plan.tune
    # Small trials checkpoint every epoch: Tune snapshots its state often then; that is fine.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    resources = {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial}
    derives = {s.label: s.derive for s in run.plan.sampled if s.derive is not None}
    trainable = tune.with_resources(
        packs.make_trainable(storage.uri, study.name, opts.cpus_per_trial) if pack > 1 else
        make_trainable(storage.uri, study.name, opts.cpus_per_trial, settings.metric, derives),
        resources)
    exp_uri = storage.uri_of(study.name, export_mod.TUNE_DIR, name)
    fs = None if storage.local else storage.fs
    if restorable:
        run.say(f"{label}: resuming experiment {name}")
        # Unfinished and errored trials continue from their last checkpoint (a trial that failed
        # for good, e.g. diverged, fails again at once from its marker); --retry-errored starts
        # errored trials from scratch. Tune restores the search algorithm and scheduler state.
        tuner = tune.Tuner.restore(exp_uri, trainable=trainable, resume_unfinished=True,
                                   resume_errored=not opts.retry_errored,
                                   restart_errored=opts.retry_errored, storage_filesystem=fs)
    else:
        if storage.exists(study.name, export_mod.TUNE_DIR, name):
            # A directory Tune cannot restore (killed before its first snapshot): start anew
            # beside it; its trials are found again through their run ids.
            name = f"{name}-{int(time.time())}"
        run.say(f"{label}: {total} {'pack' if pack > 1 else 'trial'}(s) to run in experiment "
                f"{name}")
        callbacks = [StudyCallback(total, opts.verbose, opts.heartbeat_s, epochs, label),
                     *settings.make_callbacks(storage, study.name)]
        tuner = tune.Tuner(
            trainable,
            param_space=space["space"],
            tune_config=tune.TuneConfig(
                search_alg=space["searcher"], scheduler=space["scheduler"],
                num_samples=space["num_samples"],
                # a pack reports its members' metrics under their run ids: no one metric to
                # compare (and no scheduler: `_check_plan`)
                metric=settings.metric if pack == 1 else None,
                mode=settings.resolved_mode if pack == 1 else None,
                max_concurrent_trials=settings.max_concurrent_trials,
                reuse_actors=settings.scheduler != "pbt",
                trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
            run_config=tune.RunConfig(
                name=name, storage_path=storage.uri_of(study.name, export_mod.TUNE_DIR),
                storage_filesystem=fs,
                failure_config=tune.FailureConfig(max_failures=opts.max_failures),
                # PBT restores a trial from another's checkpoint of its last perturbation:
                # keep them all; otherwise the last two are enough to resume.
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=None if settings.scheduler == "pbt" else 2),
                callbacks=callbacks, verbose=1 if opts.verbose >= 2 else 0),
        )
    tuner.fit()


def _summarize(run: _Run, uri, tab, skipped, blocked, wall) -> RunSummary:
    plan = run.plan
    df = tab.select(["run_id", "status", "experiment"]).to_pandas().drop_duplicates("run_id")
    status = dict(zip(df.run_id, df.status))
    counts: dict[str, int] = {}
    for t in plan.trials:
        s = status.get(t.run_id, "NOT RUN")
        counts[s] = counts.get(s, 0) + 1
    for series in plan.sampled:   # its trials are those of its experiment(s)
        name = _sampled_name(plan, series)
        mine = df[df.experiment.astype(str).str.startswith(name)]
        for s in mine.status:
            counts[s] = counts.get(s, 0) + 1
        missing = series.count(plan.num_samples) - len(mine)
        if missing > 0:
            counts["NOT RUN"] = counts.get("NOT RUN", 0) + missing
    return RunSummary(run.study.name, plan.scale, run.storage.uri, uri, len(plan), skipped,
                      counts, blocked, wall)


def _print_summary(s: RunSummary, say) -> None:
    parts = ", ".join(f"{v} {k}" for k, v in sorted(s.counts.items()))
    say(f"study {s.study} ({s.scale}): {parts} of {s.planned} planned "
        f"({s.skipped} already done before this run); {s.wall_s:.0f} s")
    say(f"results: {s.results}")
    say(f"Ray Tune experiments: {s.storage}/{s.study}/{export_mod.TUNE_DIR}/")
    say(f"show progress: hiddenlab study show {s.study} --storage {s.storage}")


def make_figures(storage: Storage, study: str, say) -> str | None:
    """Figures and report of the study, as `hiddenlab analysis figures` draws them."""
    from hiddenlab.cli import main   # the command line's own entry: the top of the import graph

    out = storage.uri_of(study, "figures")
    try:
        code = main(["analysis", "figures", "--results", storage.uri, "--study", study,
                     "--out", out])
    except Exception as e:  # figures are a bonus: the study itself succeeded
        say(f"figures: failed ({type(e).__name__}: {e}); results are unaffected")
        return None
    if code:
        say(f"figures: `hiddenlab analysis figures` exited {code}; skipped")
        return None
    say(f"figures: {out}")
    return out


def plan(study: Study | str, opts: RunOptions | None = None, **options: Any) -> Plan:
    """The validated plan of a study (a Study, a built-in name or a study file) as `run_study`
    would run it: `plan(study, scale="smoke")`. `len(plan)` counts every trial, sampled ones
    included; `plan.trials` are the trials known before Ray starts, `plan.sampled` the series
    Tune draws. Options are RunOptions fields."""
    opts = opts or RunOptions(**options)
    return plan_study(study, opts)[2]
