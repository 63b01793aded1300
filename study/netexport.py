"""Exported networks: a trial's evaluation network as one small file, and back as a plain
`torch.nn.Module` (`hiddenlab export`, `hiddenlab.load`).

A network found by selection is its architecture, the seed that drew its frozen values and which
values were selected. The file holds exactly that: the trial's config (the architecture, and the
seed), what rebuilding needs (input shape, classes, the torch version whose generator drew the
values), each layer as its method's `Packing` stores it (models/selection/packing.py: one bit per
connection for a mask, ceil(log2 K) for a slot index, floats for learned weights), the state
outside the selection layers (BatchNorm statistics and affine terms) and two checksums per layer:
of the frozen values the seed redraws and of the evaluation weight.

Loading redraws the values exactly as the trainer drew them (`seed_everything(seed)`, then
`build_model` on the CPU), checks them, installs the selection, asks each layer for its evaluation
weight, checks that, and returns a `torch.fx.GraphModule` of plain torch layers (`nn.Conv2d`,
`nn.Linear` without bias holding the evaluation weights, zeros where not kept; the model's own
BatchNorm, pooling and activations) that needs nothing of hiddenlab to run or to unpickle.

File layout (integers little-endian)::

    MAGIC (8 bytes) | u32 format | u32 n | n bytes: zlib(JSON header) |
    the arrays, back to back, in the header's order | sha256 of everything before (32 bytes)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import struct
import zlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.fx
from torch import nn

from hiddenlab.config import METHODS, ConfigError, TrialConfig, all_fields, field_names, kind_of, \
    option_fields
from hiddenlab.data.datasets import get_dataset
from hiddenlab.models.build import build_model
from hiddenlab.models.selection import selection_layers
from hiddenlab.models.selection.packing import Floats

MAGIC = b"HLNET\r\n\x1a"   # PNG-style: a text-mode copy or a foreign file fails at once
FORMAT = 1
SUFFIX = ".hlnet"
DRAW = "seed_everything(seed); build_model(config, input_shape, num_classes) on the CPU"


class NetFileError(ConfigError):
    """A network file that cannot be written or loaded; the message says what differs."""

    def __init__(self, path, message: str):
        super().__init__(str(path), message)


# --- the container ------------------------------------------------------------------------------
def write_container(path, header: dict, arrays: Mapping[str, np.ndarray]) -> int:
    """Write `header` (JSON-able) and `arrays` (name -> array); returns the file's size."""
    body = [np.ascontiguousarray(a) for a in arrays.values()]
    header = dict(header, arrays=[[name, a.dtype.str, list(a.shape), zlib.crc32(a.tobytes())]
                                  for name, a in zip(arrays, body)])
    head = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    digest = hashlib.sha256()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        for chunk in (MAGIC, struct.pack("<II", FORMAT, len(head)), head, *body):
            chunk = chunk if isinstance(chunk, bytes) else memoryview(chunk).cast("B")
            digest.update(chunk)
            f.write(chunk)
        f.write(digest.digest())
    tmp.replace(path)
    return path.stat().st_size


def read_container(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of a network file; NetFileError naming what is wrong with it."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise NetFileError(path, f"cannot be read ({e.strerror or e})") from None
    if not data.startswith(MAGIC):
        raise NetFileError(path, "is not a hiddenlab network file (`hiddenlab export` writes "
                           "them)")
    if len(data) < len(MAGIC) + 8 + 32:
        raise NetFileError(path, f"is truncated ({len(data)} bytes)")
    version, n = struct.unpack_from("<II", data, len(MAGIC))
    if version != FORMAT:
        raise NetFileError(path, f"has format {version}; this hiddenlab reads format {FORMAT}")
    start = len(MAGIC) + 8
    try:
        header = json.loads(zlib.decompress(data[start:start + n]))
    except (zlib.error, ValueError):
        raise NetFileError(path, "is corrupt: its header cannot be read") from None
    arrays, offset = {}, start + n
    for name, dtype, shape, crc in header["arrays"]:
        size = np.dtype(dtype).itemsize * math.prod(shape)
        raw = data[offset:offset + size]
        if len(raw) < size:
            raise NetFileError(path, f"is truncated: array {name!r} is cut short")
        if zlib.crc32(raw) != crc:
            raise NetFileError(path, f"is corrupt: array {name!r} fails its checksum")
        arrays[name] = np.frombuffer(raw, dtype=dtype).reshape(shape)
        offset += size
    if len(data) != offset + 32:
        raise NetFileError(path, f"is corrupt: {len(data) - offset - 32:+d} bytes after its "
                           "arrays")
    if hashlib.sha256(data[:offset]).digest() != data[offset:]:
        raise NetFileError(path, "is corrupt: its contents fail the file's checksum")
    return header, arrays


def digest(tensors) -> str:
    """A short checksum of tensors' dtypes, shapes and values (bytes on the CPU, contiguous).
    -0.0 counts as 0.0: a pruned weight is +-0 by the sign of a value nobody kept."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        if t.is_floating_point():
            t = t + 0.0  # -0.0 + 0.0 = +0.0
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


# --- building -----------------------------------------------------------------------------------
def data_facts(cfg) -> tuple[tuple[int, int, int], int]:
    """The input shape and classes the trial's model was built for (its data set's)."""
    spec = get_dataset(cfg.dataset)
    return tuple(spec.input_shape(cfg)), int(spec.num_classes(cfg))


def redraw(cfg, input_shape, num_classes) -> nn.Module:
    """The trial's model as it was built, before training: the same seed, the same draws. A method
    stored as floats is rebuilt by the model family alone (its values come from the file; a
    finetune trial's parent is not needed)."""
    from hiddenlab.study.trainer import seed_everything

    method = cfg.method_spec
    seed_everything(cfg.seed)
    if isinstance(method.packing, Floats):
        return build_model(cfg, input_shape, num_classes)
    return method.build_model(cfg, input_shape, num_classes)


@torch.no_grad()
def evaluation_forward(model: nn.Module, input_shape) -> None:
    """Eval mode and one forward pass, so model-level selections (a global top-k) are set."""
    model.eval()
    model(torch.zeros(1, *input_shape))


def other_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state outside the selection layers: BatchNorm statistics and affine terms."""
    prefixes = tuple(name + "." for name, _ in selection_layers(model))
    return {k: v for k, v in model.state_dict().items() if not k.startswith(prefixes)}


def plain_module(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> torch.fx.GraphModule:
    """`model` with each selection layer replaced by an nn.Conv2d / nn.Linear holding its
    evaluation weight, traced into a GraphModule: torch classes only."""
    for name, layer in selection_layers(model):
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, torch_layer(layer.spec, weights[name]))
    model._forward_pre_hooks.clear()  # a global top-k hook has nothing left to select
    try:
        module = torch.fx.symbolic_trace(model)
    except Exception as e:  # a plug-in model family with data-dependent control flow
        raise TypeError(f"this model cannot be traced into plain torch layers: {e}") from e
    return module.eval()


def torch_layer(spec, weight: torch.Tensor) -> nn.Module:
    if spec.is_conv:
        out, cin, kh, kw = spec.shape
        layer = nn.utils.skip_init(nn.Conv2d, cin, out, (kh, kw), spec.stride, spec.padding,
                                   bias=False)
    else:
        layer = nn.utils.skip_init(nn.Linear, spec.shape[1], spec.shape[0], bias=False)
    layer.weight = nn.Parameter(weight.detach().clone())
    return layer


# --- export -------------------------------------------------------------------------------------
@dataclass
class Exported:
    path: Path
    bytes: int
    header: dict
    size: "NetSize"


def export_checkpoint(ckpt: Mapping[str, Any], out, best_val: bool = False,
                      source: str = "") -> Exported:
    """Write the evaluation network of a trial checkpoint (the trainer's state dict: `config`,
    `model`, `epoch`, `history`, `best`) to `out`: its last network, or the best-validation one."""
    trial_cfg = TrialConfig.from_dict(ckpt["config"])
    method = trial_cfg.method_spec
    cfg, note = method.exported_config(trial_cfg)
    if best_val:
        if not ckpt.get("best"):
            raise NetFileError(source or out, "holds no best-validation network")
        state, epoch = ckpt["best"]["model"], ckpt["best"]["epoch"]
    else:
        state, epoch = ckpt["model"], ckpt["epoch"]
    state = {k: v.cpu() for k, v in state.items()}
    shape, classes = data_facts(cfg)
    model = redraw(cfg, shape, classes)
    frozen = _frozen_digests(model, method, state, source or out, cfg.seed)
    model.load_state_dict(state)
    evaluation_forward(model, shape)
    layers, arrays = [], {}
    for name, layer in selection_layers(model):
        packing = method.packing_of(layer)
        arrays.update({f"{name}/{key}": a for key, a in packing.pack(layer).items()})
        layers.append({"name": name, "packing": packing.name, "frozen": frozen[name],
                       "eval": digest([packing.weight(layer, _arrays_of(arrays, name))])})
    arrays.update({f"state/{key}": t.numpy() for key, t in other_state(model).items()})
    header = _header(trial_cfg, cfg, note, shape, classes, epoch, best_val, ckpt, layers)
    size = write_container(out, header, arrays)
    return Exported(Path(out), size, header, measure(model, method))


def _frozen_digests(model, method, state, where, seed) -> dict[str, str | None]:
    """Per layer: the checksum of the values the seed redraws, once they are checked to be the
    trial's (None where its packing redraws nothing)."""
    out = {}
    for name, layer in selection_layers(model):
        values = method.packing_of(layer).frozen(layer)
        for key, redrawn in values.items():
            saved = state.get(f"{name}.{key}")
            if saved is None or not torch.equal(saved, redrawn):
                raise NetFileError(where, f"the frozen values {name}.{key} are not those seed "
                                   f"{seed} draws with torch {torch.__version__} (the trial "
                                   "ran another torch version, or its method changes frozen "
                                   "values while training and must pack them)")
        out[name] = digest(values.values()) if values else None
    return out


def _arrays_of(arrays: Mapping[str, np.ndarray], layer: str) -> dict[str, np.ndarray]:
    prefix = layer + "/"
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def _header(trial_cfg, cfg, note, shape, classes, epoch, best_val, ckpt, layers) -> dict:
    import hiddenlab

    history = ckpt.get("history") or []
    at = next((h for h in history if h.get("epoch") == epoch), {})
    last = history[-1] if history else {}
    test = None
    if note is None and last.get("done"):
        test = last.get("best_val_test_acc") if best_val else \
            (last.get("test_acc") if epoch == last.get("epoch") else None)
    return {"hiddenlab": hiddenlab.__version__, "torch": torch.__version__,
            "run_id": trial_cfg.run_id(), "config": cfg.to_dict(), "input_shape": list(shape),
            "num_classes": classes, "seed": cfg.seed, "draw": DRAW,
            "generator": f"torch {torch.__version__} CPU default generator (mt19937)",
            "epoch": epoch, "network": "best-val" if best_val else "last",
            "val_acc": at.get("val_acc"), "test_acc": test, "note": note, "layers": layers}


# --- loading ------------------------------------------------------------------------------------
@dataclass
class NetFile:
    """A loaded network file: the plain module and what the file says about it."""

    module: torch.fx.GraphModule
    header: dict
    config: TrialConfig
    size: "NetSize"


def load(path) -> torch.fx.GraphModule:
    """The network of a file written by `hiddenlab export`, as plain torch layers (eval mode)."""
    return read(path).module


def read(path) -> NetFile:
    """Load a network file, checking every checksum; NetFileError says what differs."""
    header, arrays = read_container(path)
    try:
        cfg = TrialConfig.from_dict(header["config"])
    except ConfigError as e:
        raise NetFileError(path, f"its config is not one this hiddenlab accepts ({e})") from None
    shape, classes = tuple(header["input_shape"]), header["num_classes"]
    model = redraw(cfg, shape, classes)
    layers = selection_layers(model)
    _check_layers(path, header, cfg, layers)
    _load_other_state(path, model, arrays)
    for name, layer in layers:
        cfg.method_spec.packing_of(layer).install(layer, _arrays_of(arrays, name))
    evaluation_forward(model, shape)
    weights = {}
    for (name, layer), entry in zip(layers, header["layers"]):
        weights[name] = cfg.method_spec.packing_of(layer).weight(layer, _arrays_of(arrays, name))
        if digest([weights[name]]) != entry["eval"]:
            raise NetFileError(path, f"the evaluation weight of layer {name!r} rebuilt from "
                               "the file differs from the trial's (its checksum does not match):"
                               f" {_versions(header)}")
    size = measure(model, cfg.method_spec)
    return NetFile(plain_module(model, weights), header, cfg, size)


def accuracy_on_test_set(nf: NetFile) -> float:
    """The loaded network's accuracy on its trial's test set, on the CPU, batched as the trial
    evaluated it."""
    from hiddenlab.data import build_data
    from hiddenlab.study.trainer import evaluate, seed_everything

    cfg = nf.config
    seed_everything(cfg.seed)  # as the trainer builds its data
    data = build_data(cfg, torch.device("cpu"))
    return evaluate(nf.module, nf.module, data.test, nn.CrossEntropyLoss(),
                    contextlib.nullcontext())[1]


def _check_layers(path, header, cfg, layers) -> None:
    names = [e["name"] for e in header["layers"]]
    if names != [n for n, _ in layers]:
        raise NetFileError(path, f"its layers ({len(names)}) are not those this hiddenlab builds "
                           f"for {cfg.model} ({len(layers)}): {_versions(header)}")
    for (name, layer), entry in zip(layers, header["layers"]):
        packing = cfg.method_spec.packing_of(layer)
        if packing.name != entry["packing"]:
            raise NetFileError(path, f"layer {name!r} is packed as {entry['packing']}; "
                               f"{cfg.method} now packs it as {packing.name}")
        values = packing.frozen(layer)
        got = digest(values.values()) if values else None
        if got != entry["frozen"]:
            raise NetFileError(path, f"the frozen values of layer {name!r} redrawn from seed "
                               f"{header['seed']} differ from the trial's (checksum {got} != "
                               f"{entry['frozen']}): {_versions(header)}")


def _versions(header) -> str:
    if header["torch"] != torch.__version__:
        return (f"the file was written with torch {header['torch']} and this is torch "
                f"{torch.__version__}, whose generator or kernels differ")
    return "same torch version: the file's seed or config is not the trial's"


def _load_other_state(path, model, arrays) -> None:
    state = {k[len("state/"):]: torch.from_numpy(v.copy()) for k, v in arrays.items()
             if k.startswith("state/")}
    expected = other_state(model)
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise NetFileError(path, f"its non-selection state does not fit the model (missing "
                           f"{missing[:3]}, unexpected {extra[:3]})")
    model.load_state_dict(state, strict=False)


# --- sizes --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NetSize:
    """Sizes of a trial's exported network, from its config alone (built on the meta device)."""

    connections: int        # weight entries of the selection layers
    bits: int               # theoretical: connections x bits per connection + stored floats
    export_bytes: int       # the arrays of the exported file (its header adds ~1-2 KB)
    float32_bytes: int      # the same network as float32 weights + its other state
    state_bytes: int        # the trial's model state (frozen values, scores): a float checkpoint

    @property
    def ratio(self) -> float:
        return self.float32_bytes / self.export_bytes


def export_size(cfg: TrialConfig | Mapping[str, Any]) -> NetSize:
    """Sizes of the exported network of a trial config (a TrialConfig, or a flat dict such as a
    study record or a results.parquet row: fields of other methods and nulls are ignored)."""
    if not isinstance(cfg, TrialConfig):
        cfg = config_from_row(cfg)
    cfg = cfg.method_spec.exported_config(cfg)[0]
    return _size(json.dumps(cfg.to_dict(), sort_keys=True))


def human_bytes(n: float) -> str:
    """1234567 -> '1.2M' (powers of 1024)."""
    if n < 1024:
        return f"{n:.0f}B"
    for unit in "KMG":
        n /= 1024
        if n < 1024 or unit == "G":
            return f"{n:.1f}{unit}"


def config_from_row(row: Mapping[str, Any]) -> TrialConfig:
    """The TrialConfig of a flat row holding every method's options (nulls where not taken), such
    as a results.parquet row."""
    options = {f.name for f in fields(METHODS.get(row["method"]).Options)}
    names = (set(field_names()) - set(option_fields())) | options
    values = {k: _python(all_fields()[k], v) for k, v in row.items() if k in names}
    return TrialConfig.from_dict({k: v for k, v in values.items() if not _missing(v)})


def _python(f, v):
    """A pandas row's value as the field's Python value: numpy scalars and arrays as Python ones,
    integers of a column with nulls (floats there) as ints."""
    v = v.tolist() if hasattr(v, "tolist") else v
    if kind_of(f) == "int" and isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


@functools.lru_cache(maxsize=256)
def _size(cfg_json: str) -> NetSize:
    cfg = TrialConfig.from_dict(json.loads(cfg_json))
    shape, classes = data_facts(cfg)
    with torch.device("meta"):  # no memory, whatever the model's size
        model = build_model(cfg, shape, classes) if isinstance(cfg.method_spec.packing, Floats) \
            else cfg.method_spec.build_model(cfg, shape, classes)
    return measure(model, cfg.method_spec)


def measure(model: nn.Module, method) -> NetSize:
    """Sizes of `model` (any device, meta included) exported as `method` packs it."""
    conns = bits = payload = 0
    for _, layer in selection_layers(model):
        packing = method.packing_of(layer)
        conns += layer.connections
        bits += packing.bits(layer) * layer.connections
        payload += packing.nbytes(layer)
    other = sum(t.numel() * t.element_size() for t in other_state(model).values())
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return NetSize(conns, round(bits) + 8 * other, payload + other, 4 * conns + other, state)
