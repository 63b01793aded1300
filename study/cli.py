"""`hiddenlab train`: one trial in the foreground (flags = TrialConfig fields), and `hiddenlab study`
(registered by `hiddenlab.study.study_cli`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hiddenlab.config import METHODS, ConfigError, TrialConfig

from . import preflight
from .cores import CoreShare
from .study_cli import register_study
from .trainer import LocalReporter, TrialDiverged, run_trial


def method_in(argv: list[str]) -> str | None:
    """The --method named on a command line (its flags and defaults are the ones shown)."""
    for i, arg in enumerate(argv):
        if arg == "--method" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--method="):
            return arg.split("=", 1)[1]
    return None


def register(subparsers, argv: list[str] | None = None) -> None:
    method = method_in(argv or [])
    shown = method if method in METHODS else f"{METHODS.default} (the default)"
    p = subparsers.add_parser(
        "train", help="run one trial in the foreground",
        description="Run one trial: progress bar, per-epoch metrics, checkpoint every epoch "
                    "(re-running the same command resumes it), final JSON line on stdout. "
                    f"Flags and defaults shown are those of --method {shown}: with nothing "
                    "else given, a method trains with its published recipe (`hiddenlab "
                    "methods` lists them; `--method X --help` shows X's).")
    TrialConfig.add_arguments(p, method)
    p.add_argument("--out", default=None,
                   help="trial directory (default: runs/<run id>); an existing checkpoint there "
                        "is resumed")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars")
    p.set_defaults(func=_train)
    register_study(subparsers)


def _train(args) -> int:
    cfg = TrialConfig.from_args(args)
    cfg.method_spec.preflight(cfg)  # e.g. refuse a missing finetune parent before writing
    out = Path(args.out) if args.out else Path("runs") / cfg.run_id()
    _same_trial(cfg, out)
    for note in preflight.check_trial(cfg, out):  # device, data, the folder writable
        print(f"data: {note}", file=sys.stderr)
    reporter = LocalReporter(out, progress=args.progress and sys.stderr.isatty(),
                             keep_epochs=cfg.keep_epochs, config=cfg.to_dict())
    print(f"trial {cfg.run_id()} -> {out}", file=sys.stderr)
    try:
        with CoreShare(cfg.threads) as cores:  # the cores shared with other foreground trials
            if not cfg.compile:   # a hook in compiled code would break its graphs
                cores.follow()
            metrics = run_trial(cfg, _EchoReporter(reporter, cores.threads))
    except TrialDiverged as e:
        print(f"hiddenlab: trial diverged: {e} (try a lower --lr; the checkpoint of the last "
              f"finite epoch is kept in {out})", file=sys.stderr)
        return 1
    print(json.dumps({"run_id": cfg.run_id(), **_flat(metrics)}))
    return 0


def _same_trial(cfg: TrialConfig, out: Path) -> None:
    """An --out that already holds a trial must hold this one (then it is resumed)."""
    existing = out / "config.json"
    if not existing.is_file():
        return
    try:
        previous = TrialConfig.from_dict(json.loads(existing.read_text()))
    except (OSError, ValueError, TypeError) as e:  # unreadable, not JSON, not a config
        raise ConfigError("out", f"{existing} is not a trial's config.json ({e}); choose "
                          "another --out") from None
    if previous.run_id() != cfg.run_id():
        raise ConfigError("out", f"{out} holds another trial ({previous.run_id()}); "
                          "choose another --out")


class _EchoReporter:
    """Prints a line per epoch to stderr beside the local reporter's files."""

    def __init__(self, inner, threads: int | None = None):
        self.inner = inner
        self.progress = inner.progress
        self.threads = threads

    def load_state(self):
        return self.inner.load_state()

    def report(self, metrics, state, artifacts):
        self.inner.report(metrics, state, artifacts)
        keys = ("train_loss", "train_acc", "val_acc", "flip_rate", "kept_fraction")
        line = "  ".join(f"{k}={metrics[k]:.4g}" for k in keys if k in metrics)
        if "test_acc" in metrics:
            line += f"  test_acc={metrics['test_acc']:.4g}"
        print(f"epoch {metrics['epoch']}: {line}", file=sys.stderr, flush=True)


def _flat(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not isinstance(v, dict)}
