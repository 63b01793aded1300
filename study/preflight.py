"""Pre-flight: what would otherwise fail late, checked before a study's Ray starts
(`check_study`, called by `run_study`) or a foreground trial trains (`check_trial`).

- devices: CUDA where a trial asks for it, GPUs for `--gpus-per-trial` on the embedded Ray;
- optional packages for what is asked (`require`; `ray://` needs the `ray[client]` extra);
- a cluster address answers within `ADDRESS_TIMEOUT_S` (Ray itself retries for minutes);
- data: every trial's data set is present under its data root, or can be downloaded there (the
  note says which); FFCV files exist where the ffcv loader needs them;
- folders: the storage or output folder can be written: a probe file is created and removed in
  it, or in its nearest existing parent, so nothing is left behind. Probes come last, after
  every check that could still refuse.

Each refusal is a `ConfigError` naming the field or the file: the CLI prints it as one line and
exits 2. On a cluster (`--address`) the driver may not see the workers' data: missing data is a
warning there, not a refusal.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Iterable

from hiddenlab.config import ConfigError, TrialConfig

ADDRESS_TIMEOUT_S = 5.0    # a cluster's head answers in milliseconds; a dead one never does
DOWNLOAD_TIMEOUT_S = 5.0   # one HEAD request to a download address
RAY_CLIENT_PORT = 10001


# --- optional packages -----------------------------------------------------------------------------
def require(package: str, for_what: str, install: str | None = None,
            field: str | None = None) -> None:
    """Refuse `for_what` when the optional `package` (an import name) is not installed, naming
    what to install (`install`: the pip requirement, default the package)."""
    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):   # a parent package missing, or a broken install
        found = False
    if not found:
        raise ConfigError(field or package, f"{for_what} needs the optional package {package}, "
                          f"which is not installed: pip install '{install or package}'")


# --- folders ---------------------------------------------------------------------------------------
def check_writable(path: str | os.PathLike, field: str) -> Path:
    """`path` is, or can be created as, a folder this process may write in. Probes the folder or
    its nearest existing parent with a file created and removed at once."""
    target = Path(path).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise ConfigError(field, f"{target} is a file, not a folder")
    probe_in = target
    while not probe_in.exists():
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise ConfigError(field, f"{target} cannot be created: {probe_in} is a file")
    try:
        with tempfile.NamedTemporaryFile(dir=probe_in, prefix=".hiddenlab-probe-"):
            pass
    except OSError as e:
        where = "" if probe_in == target else f" (to create {target})"
        raise ConfigError(field, f"cannot write in {probe_in}{where}: "
                          f"{e.strerror or type(e).__name__}") from None
    return target


def check_storage_writable(storage) -> None:
    """A study's storage (`hiddenlab.study.storage.Storage`): local folders are probed like any
    folder; remote ones get a probe object written and deleted."""
    if storage.local:
        check_writable(storage.root, "storage")
        return
    probe = storage.path(f".hiddenlab-probe-{os.getpid()}")
    try:
        with storage.fs.open_output_stream(probe) as f:
            f.write(b"probe")
        storage.fs.delete_file(probe)
    except Exception as e:  # credentials, bucket missing, read-only: pyarrow raises several kinds
        raise ConfigError("storage", f"cannot write in {storage.uri}: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


# --- a cluster address -----------------------------------------------------------------------------
def check_address(address: str | None, timeout: float = ADDRESS_TIMEOUT_S) -> None:
    """A Ray address that answers within `timeout`: `auto` resolved to a running cluster,
    HOST:PORT Ray's GCS there, `ray://HOST[:PORT]` a gRPC server (the Ray client server), with
    the client extra installed."""
    if address in (None, "local"):
        return
    address = address.strip()
    if address.startswith("ray://"):
        require("grpc", f"--address {address} (the Ray client)", "ray[client]", field="address")
        host, _, port = address[len("ray://"):].partition(":")
        _connect(address, host, int(port or RAY_CLIENT_PORT), timeout, grpc=True)
        return
    if address == "auto":
        address = _running_cluster()
        if address == "auto":
            return
    host, _, port = address.rpartition(":")
    _connect(address, host, int(port), timeout, grpc=False)
    why = _not_gcs(address, timeout)
    if why:
        raise ConfigError("address", f"{address} answers but is not a Ray cluster's head "
                          f"({why}); give the GCS address `ray start --head` prints")


def _running_cluster() -> str:
    """What `ray.init(address="auto")` would join: $RAY_ADDRESS, else the latest `ray start`."""
    try:
        from ray._private.services import get_ray_address_from_environment
    except ImportError:  # a Ray without this helper: let ray.init find it
        return "auto"
    try:
        return get_ray_address_from_environment("auto", None)
    except ConnectionError:
        raise ConfigError("address", "auto: no running Ray cluster found on this machine "
                          "($RAY_ADDRESS is unset and no `ray start` is running); start one "
                          "with `ray start --head` or give HOST:PORT") from None


# An HTTP/2 client preface and an empty SETTINGS frame: a gRPC server answers with a SETTINGS
# frame of its own.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _connect(address: str, host: str, port: int, timeout: float, grpc: bool) -> None:
    """A TCP connection to HOST:PORT within `timeout` (and, with `grpc`, an HTTP/2 answer)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            if grpc:
                s.settimeout(timeout)
                s.sendall(_H2_PREFACE)
                frame = s.recv(9)
                if len(frame) < 4 or frame[3] != 4:
                    raise ConfigError("address", f"{address} answers but is no gRPC server "
                                      "(the Ray client server is one)")
    except ConfigError:
        raise
    except OSError as e:
        why = "no answer" if isinstance(e, socket.timeout) else (e.strerror or type(e).__name__)
        raise ConfigError("address", f"cannot reach the Ray cluster at {address} within "
                          f"{timeout:g} s ({why}); is its head running (`ray start --head`)?"
                          ) from None


def _not_gcs(address: str, timeout: float) -> str | None:
    """None when Ray's GCS at `address` answers a read within `timeout`, else why not. (Ray's
    own connection keeps retrying for minutes.) Asked from a thread so a server that accepts
    and then stays silent cannot hold this process."""
    try:
        from ray._raylet import GcsClient
    except ImportError:   # cannot tell here: ray.init will
        return None
    answer: dict[str, str] = {}

    def ask() -> None:
        try:
            GcsClient(address=address).internal_kv_get(b"session_name", b"session",
                                                        timeout=timeout)
            answer["ok"] = ""
        except Exception as e:  # RpcError and friends
            answer["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"

    t = threading.Thread(target=ask, daemon=True)
    t.start()
    t.join(timeout + 1.0)
    if "ok" in answer:
        return None
    return answer.get("error", f"no answer within {timeout:g} s")


# --- data ------------------------------------------------------------------------------------------
def check_data(cfgs: Iterable[TrialConfig], strict: bool = True) -> list[str]:
    """Every distinct data set of `cfgs` present, or downloadable; returns notes to show (what
    will be downloaded, or, when not `strict`, what is missing here)."""
    notes: list[str] = []
    seen = set()
    for cfg in cfgs:
        key = (cfg.dataset, cfg.data_root, cfg.loader, cfg.val_size, cfg.synthetic_size,
               tuple(cfg.synthetic_shape), cfg.synthetic_classes)
        if key in seen:
            continue
        seen.add(key)
        try:
            note = _data_of(cfg)
        except ConfigError as e:
            if strict:
                raise
            note = f"{e} (the cluster's workers may have it)"
        if note:
            notes.append(note)
    return notes


def _data_of(cfg: TrialConfig) -> str | None:
    from hiddenlab.data.datasets import DATASETS, resolve_root
    from hiddenlab.data.loaders import resolve_loader

    spec = DATASETS.get(cfg.dataset)
    root = resolve_root(cfg.data_root)
    if root.exists() and not root.is_dir():
        raise ConfigError("data_root", f"{root} is a file, not a folder")
    loader = resolve_loader(cfg.loader, spec.default_loader)
    if loader == "gpu" and not spec.in_memory:
        raise ConfigError("loader", f"{spec.name} does not fit in memory as one tensor; use "
                          f"--loader ffcv or torchvision")
    if loader == "ffcv":
        return _ffcv_files(spec, cfg, root)
    _check_val_size(spec, cfg, root)
    return check_source(spec, root)


def check_source(spec, root: Path) -> str | None:
    """The data set's files under `root`, or a download that can work (the note returned says
    so); ConfigError naming the data set otherwise."""
    from hiddenlab.data.datasets import FashionMNISTSpec, ImageNetSpec, TorchvisionSpec, offline

    missing = [f for f in spec.files(root) if not f.exists()]
    if not missing:
        return None
    if isinstance(spec, ImageNetSpec):
        raise ConfigError("dataset", f"imagenet: {missing[0]} is missing; copy ILSVRC-2012 there "
                          "as ImageFolder trees (val sorted into class folders)")
    if not isinstance(spec, (TorchvisionSpec, FashionMNISTSpec)):   # nothing downloads it
        raise ConfigError("dataset", f"{spec.name}: {missing[0]} is missing")
    where = missing[0].parent
    get = (f"copy its files there, or download them with `hiddenlab data prepare {spec.name} "
           "--format torchvision` where there is a connection")
    if offline():
        raise ConfigError("dataset", f"{spec.name}: not in {where} and HIDDENLAB_OFFLINE forbids "
                          f"downloading it; {get}")
    why = _not_downloadable(spec)
    if why is not None:
        raise ConfigError("dataset", f"{spec.name}: not in {where} and it cannot be downloaded "
                          f"({why}); {get}")
    check_writable(root, "data_root")
    return f"{spec.name}: not in {where}; the first trial downloads it there"


# hiddenlab.data.loaders.ffcv.AUTO_PREPARE: the data sets its loader writes on first use (not
# imported from there: importing FFCV takes many seconds)
AUTO_PREPARE = ("digits", "synthetic")


def _ffcv_files(spec, cfg, root: Path) -> str | None:
    from hiddenlab.data.ffcv_files import PARTS, beton_path

    folder = spec.ffcv_dir(cfg, root)
    missing = [beton_path(folder, p) for p in PARTS if not beton_path(folder, p).is_file()]
    if not missing:
        return None
    if spec.name in AUTO_PREPARE:
        check_writable(folder, "data_root")
        return f"{spec.name}: FFCV files not in {folder}; the first trial writes them"
    raise ConfigError("loader", f"{spec.name}: no FFCV file {missing[0]}; `hiddenlab data "
                      f"prepare {spec.name} --format ffcv` writes it")


def _check_val_size(spec, cfg: TrialConfig, root: Path) -> None:
    """A given validation size within the training part, where its size is known without
    reading the data (the loaders refuse it too, but inside Ray that is minutes later)."""
    from hiddenlab.data.datasets import DigitsSpec, SyntheticSpec

    if cfg.val_size is None:
        return
    if isinstance(spec, SyntheticSpec):
        n = cfg.synthetic_size + cfg.synthetic_size // 4   # its training part: train + val
    elif isinstance(spec, DigitsSpec):
        n = spec.size(cfg, root, "train")
    else:
        return
    if cfg.val_size >= n:
        raise ConfigError("val_size", f"{cfg.val_size} must be in [1, {n - 1}]: {spec.name}'s "
                          f"training part has {n} images")


def _not_downloadable(spec) -> str | None:
    """None when a download address of `spec` answers a HEAD request for its first file (through
    the proxy the environment names, as torchvision's download does), else why not."""
    import urllib.error
    import urllib.request

    import torchvision.datasets as tvd

    cls = getattr(tvd, "FashionMNIST" if spec.name == "fashion-mnist" else spec.tv_class)
    mirrors = getattr(cls, "mirrors", None)
    urls = [m + cls.resources[0][0] for m in mirrors] if mirrors else [cls.url]
    why = "no download address known"
    for url in urls:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"),
                                        timeout=DOWNLOAD_TIMEOUT_S):
                return None
        except urllib.error.HTTPError as e:
            why = f"{url}: HTTP {e.code}"
        except (OSError, ValueError) as e:   # URLError (DNS, refused), timeouts
            why = f"{url}: {getattr(e, 'reason', e)}"
    return why


# --- devices ----------------------------------------------------------------------------------------
def check_devices(cfgs: Iterable[TrialConfig], gpus_per_trial: float | None = None,
                  local: bool = True) -> None:
    import torch

    cuda = local and torch.cuda.is_available()
    for cfg in cfgs:
        if cfg.device == "cuda" and gpus_per_trial == 0:
            raise ConfigError("device", "cuda: the trials get no GPU (--gpus-per-trial is 0)")
        if cfg.device == "cuda" and local and gpus_per_trial is None and not cuda:
            raise ConfigError("device", "cuda was asked for but no CUDA device is visible")
    if local and gpus_per_trial and torch.cuda.device_count() < gpus_per_trial:
        raise ConfigError("gpus_per_trial", f"{gpus_per_trial:g} GPU(s) per trial, but this "
                          f"machine has {torch.cuda.device_count()}")


# --- the two entry points ----------------------------------------------------------------------------
def check_study(storage, plan, opts) -> None:
    """Everything `run_study` can check before Ray starts (see the module docstring)."""
    cfgs = [t.cfg for t in plan.trials] + [s.probe for s in plan.sampled]
    local = opts.address in (None, "local")
    check_devices(cfgs, opts.gpus_per_trial, local)
    if local:
        cores = opts.num_cpus or os.cpu_count() or 1
        if opts.cpus_per_trial > cores:
            raise ConfigError("cpus_per_trial", f"{opts.cpus_per_trial:g} CPUs per trial, but "
                              f"the embedded Ray has {cores}")
    check_address(opts.address)
    notes = check_data(cfgs, strict=local)
    check_storage_writable(storage)
    if opts.verbose:
        for note in notes:
            print(f"[hiddenlab] data: {note}", file=sys.stderr, flush=True)


def check_trial(cfg: TrialConfig, out: Path) -> list[str]:
    """Before a foreground trial builds anything: what its method prepares (a finetune parent
    read and its network and data taken over), its device, its data, its folder."""
    cfg = cfg.method_spec.prepare(cfg)
    check_devices([cfg])
    notes = check_data([cfg])
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError("out", f"{out} is a file, not a folder")
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file() and not zipfile.is_zipfile(ckpt):   # torch.save writes a zip archive
        raise ConfigError("out", f"{ckpt} is not a readable checkpoint (not a torch archive); "
                          "move it away to start the trial anew")
    check_writable(out, "out")
    return notes
