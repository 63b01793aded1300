"""`hiddenlab export RUN --out FILE` (a trial's network as one small file), `hiddenlab export
--verify FILE`, and the study-level export behind `hiddenlab study export NAME --networks DIR`.

RUN is a trial directory of `hiddenlab train` (`checkpoint.pt`, `epoch_<E>.pt`), a Ray Tune trial
directory (`checkpoint_<N>/checkpoint.pt`) or one of its checkpoint directories, or a checkpoint
file. The container is hiddenlab.study.netexport.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from hiddenlab.config import ConfigError


def register(subparsers, argv: list[str] | None = None) -> None:
    p = subparsers.add_parser(
        "export", help="a trial's network as one small file: seed + selection bits",
        description="Write a trial's evaluation network as one small file: its config and seed "
                    "(the frozen values are redrawn from them), the selection packed as bits "
                    "(1 per connection for masks, ceil(log2 K) for slot machines; floats for "
                    "learned weights), the BatchNorm state and checksums. `hiddenlab.load(FILE)`"
                    " gives it back as a plain torch module.")
    p.add_argument("run", nargs="?", help="trial directory (train or Ray Tune), Tune checkpoint "
                   "directory, or checkpoint file")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--epoch", type=int, default=None,
                       help="that epoch's network (a kept epoch_<E>.pt; default: the last)")
    which.add_argument("--best-val", action="store_true",
                       help="the best-validation network the checkpoint keeps")
    p.add_argument("--out", default=None, help="the file to write")
    p.add_argument("--verify", metavar="FILE", default=None,
                   help="load FILE instead: redraw, unpack and check every checksum")
    p.add_argument("--test", action="store_true",
                   help="with --verify: also evaluate the test set on the CPU and compare with "
                        "the trial's test accuracy (needs the data)")
    p.set_defaults(func=_main)


def _main(args) -> int:
    if args.verify:
        if args.run or args.out or args.epoch is not None or args.best_val:
            raise ConfigError("verify", "takes only a FILE (and --test)")
        return _verify(args.verify, args.test)
    if not args.run:
        raise ConfigError("run", "give a trial directory or checkpoint (or --verify FILE)")
    if not args.out:
        raise ConfigError("out", "give the file to write (e.g. --out net.hlnet)")
    if args.test:
        raise ConfigError("test", "goes with --verify FILE")
    return _export(args.run, args.epoch, args.best_val, args.out)


# --- finding a trial's checkpoint -----------------------------------------------------------------
def load_run(run: str, epoch: int | None = None) -> tuple[dict, Path]:
    """(checkpoint, its path) of a trial: the latest, or epoch `epoch` where it was kept."""
    path = Path(run).expanduser()
    if not path.exists():
        raise ConfigError("run", f"{path} does not exist")
    candidates = [path] if path.is_file() else _candidates(path, epoch)
    seen = []
    for c in candidates:
        ckpt = _read(c)
        if epoch is None or ckpt.get("epoch") == epoch:
            return ckpt, c
        seen.append(ckpt.get("epoch"))
    if not candidates:
        raise ConfigError("run", f"no checkpoint in {path} (checkpoint.pt, epoch_<E>.pt or "
                          "checkpoint_<N>/checkpoint.pt)")
    kept = sorted(int(p.stem.split("_")[1]) for p in path.glob("epoch_*.pt")) if \
        path.is_dir() else []
    raise ConfigError("epoch", f"{path} holds epoch(s) {sorted(set(seen + kept))}, not {epoch}"
                      " (keep epochs with --keep-epochs when training)")


def _candidates(path: Path, epoch: int | None) -> list[Path]:
    out = [path / f"epoch_{epoch}.pt"] if epoch is not None else []
    out.append(path / "checkpoint.pt")
    out += sorted(path.glob("checkpoint_*/checkpoint.pt"), reverse=True)  # Tune: newest first
    return [p for p in out if p.is_file()]


def _read(path: Path) -> dict:
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or not a checkpoint at all: name the file
        raise ConfigError("run", f"{path} is not a readable checkpoint ({type(e).__name__})") \
            from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise ConfigError("run", f"{path} is not a hiddenlab trial checkpoint")
    return ckpt


# --- the commands ---------------------------------------------------------------------------------
def _export(run: str, epoch: int | None, best_val: bool, out: str) -> int:
    from hiddenlab.study.netexport import export_checkpoint

    ckpt, path = load_run(run, epoch)
    ex = export_checkpoint(ckpt, out, best_val=best_val, source=str(path))
    print(describe(ex.header, ex.bytes, ex.size))
    return 0


def describe(header: dict, nbytes: int, size) -> str:
    """What an exported file holds and weighs, in three lines."""
    cfg = header["config"]
    acc = "  ".join(f"{k} {header[k]:.4f}" for k in ("val_acc", "test_acc")
                    if header.get(k) is not None)
    lines = [f"{header['run_id']} ({cfg['method']} {cfg['model']}), epoch {header['epoch']} "
             f"({header['network']} network){'  ' + acc if acc else ''}",
             f"  {nbytes:,} bytes: {size.export_bytes:,} of packed selection and state "
             f"({size.bits:,} bits for {size.connections:,} connections) + "
             f"{nbytes - size.export_bytes:,} of header and checksums",
             f"  float32 network {size.float32_bytes:,} bytes ({size.float32_bytes / nbytes:.1f}x"
             f" larger); the trial's model state {size.state_bytes:,} bytes"]
    if header.get("note"):
        lines.append(f"  note: {header['note']}")
    return "\n".join(lines)


def _verify(file: str, test: bool) -> int:
    from hiddenlab.study.netexport import accuracy_on_test_set, read

    nf = read(file)  # raises NetFileError naming what differs
    h = nf.header
    print(describe(h, Path(file).stat().st_size, nf.size))
    print(f"  ok: file checksum; frozen values redrawn from seed {h['seed']} (torch "
          f"{h['torch']} -> {_torch()}); evaluation weights of {len(h['layers'])} layers")
    if not test:
        return 0
    acc = accuracy_on_test_set(nf)
    want = h.get("test_acc")
    if want is None:
        print(f"  test accuracy on the CPU: {acc:.4f} (the trial recorded none for this network)")
        return 0
    same = acc == want
    print(f"  test accuracy on the CPU: {acc:.4f}, the trial's {want:.4f}: "
          f"{'equal' if same else 'DIFFERENT (a GPU or bf16 trial may differ in a few images)'}")
    return 0 if same else 1


def _torch() -> str:
    import torch

    return torch.__version__


# --- a whole study --------------------------------------------------------------------------------
def export_study(storage, study: str, out_dir, say=print) -> list[dict]:
    """Export the last network of every finished (TERMINATED) trial of `study` to
    `out_dir/<run_id>.hlnet`; returns one row per file (also written to out_dir/networks.json)."""
    from hiddenlab.study.export import TUNE_DIR, collect
    from hiddenlab.study.netexport import SUFFIX, export_checkpoint
    from hiddenlab.study.storage import Storage

    storage = storage if isinstance(storage, Storage) else Storage(storage)
    out_dir = Path(out_dir)
    rows = []
    for rid, rec in sorted(collect(storage, study).items()):
        if rec.status != "TERMINATED":
            continue
        trial = (study, TUNE_DIR, rec.experiment, rid)
        ckpt = _latest_tune_checkpoint(storage, trial)
        if ckpt is None:
            say(f"{rid}: no checkpoint in {storage.uri_of(*trial)}; skipped")
            continue
        ex = export_checkpoint(ckpt, out_dir / f"{rid}{SUFFIX}", source=storage.uri_of(*trial))
        rows.append({"run_id": rid, "file": ex.path.name, "bytes": ex.bytes,
                     "float32_bytes": ex.size.float32_bytes, "epoch": ex.header["epoch"],
                     "test_acc": ex.header["test_acc"], "note": ex.header["note"]})
        say(f"{rid}: {ex.bytes:,} bytes (float32 {ex.size.float32_bytes:,})")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "networks.json").write_text(json.dumps(rows, indent=1))
    return rows


def _latest_tune_checkpoint(storage, trial: tuple[str, ...]) -> dict | None:
    import torch

    for name in sorted(storage.listdir(*trial), reverse=True):
        if name.startswith("checkpoint_") and storage.exists(*trial, name, "checkpoint.pt"):
            data = storage.read_bytes(*trial, name, "checkpoint.pt")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    return None
