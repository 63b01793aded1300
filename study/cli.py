"""`hiddenlab train`: one trial in the foreground (flags = TrialConfig fields), and `hiddenlab study`
(registered by `hiddenlab.study.study_cli`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import ConfigError, TrialConfig


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="run one trial in the foreground",
        description="Run one trial: progress bar, per-epoch metrics, checkpoint every epoch "
                    "(re-running the same command resumes it), final JSON line on stdout.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    TrialConfig.add_arguments(p)
    p.add_argument("--out", default=None,
                   help="trial directory (default: runs/<run id>); an existing checkpoint there "
                        "is resumed")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars")
    p.set_defaults(func=_train)
    try:
        from .study_cli import register_study
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.study_cli":
            raise
    else:
        register_study(subparsers)


def _train(args) -> int:
    from hiddenlab.models.selection.finetune import parent_checkpoint

    from .trainer import LocalReporter, TrialDiverged, run_trial

    cfg = TrialConfig.from_args(args)
    if cfg.method == "finetune":
        parent_checkpoint(cfg.parent, cfg.parent_epoch)  # refuse a missing parent before writing
    out = Path(args.out) if args.out else Path("runs") / cfg.run_id()
    existing = out / "config.json"
    if existing.exists():
        previous = TrialConfig.from_dict(json.loads(existing.read_text()))
        if previous.run_id() != cfg.run_id():
            raise ConfigError("out", f"{out} holds another trial ({previous.run_id()}); "
                              "choose another --out")
    reporter = LocalReporter(out, progress=args.progress and sys.stderr.isatty(),
                             keep_epochs=cfg.keep_epochs, config=cfg.to_dict())
    print(f"trial {cfg.run_id()} -> {out}", file=sys.stderr)
    try:
        metrics = run_trial(cfg, _EchoReporter(reporter))
    except TrialDiverged as e:
        print(f"hiddenlab: trial diverged: {e} (try a lower --lr; the checkpoint of the last "
              f"finite epoch is kept in {out})", file=sys.stderr)
        return 1
    print(json.dumps({"run_id": cfg.run_id(), **_flat(metrics)}))
    return 0


class _EchoReporter:
    """Prints a line per epoch to stderr beside the local reporter's files."""

    def __init__(self, inner):
        self.inner = inner
        self.progress = inner.progress

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
