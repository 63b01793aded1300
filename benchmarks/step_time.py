"""Step time of every selection method against dense training, side by side in one run.

A step is what `hiddenlab.study.trainer.run_trial` does per batch: forward (under bf16 autocast
when asked), cross-entropy, `zero_grad(set_to_none=True)`, backward, SGD-with-momentum step (the
trainer's optimiser: momentum 0.9, weight decay 1e-4, the scores only for selection methods).
Data are random tensors already on the device: no loader in the loop.

Every (method, model) pair is built once; for each repeat (`--repeats`, default 7) the methods
are run in turn (the order rotates each repeat) for `--steps` steps each (default 1 on CPU, 10 on
CUDA), so slow drift of a shared machine hits every method alike. ms/step is the median over
repeats; `ratio_to_dense` is the median over repeats of the paired ratio (this method's time /
dense's time in the same repeat), the figure the targets are about; `speedup_vs_ref` likewise
pairs a method with its reference formulation. Rows named `ref-*` are the reference code's
formulations (benchmarks/reference_impls.py) on the same frozen weights and scores (shared) and
the same initial scores; `--ref-precision fp32` runs them in the reference's precision while the
rest use `--precision`. `--before GIT_REV` adds rows `before:<method>`: the selection layers of
an earlier revision on the same tensors (before/after of a change). `--selection-only` times
only the selection work of a step (every layer's effective weight and its backward to the scores,
no convolutions), the part the fast paths change. `--mask-timing` times the edge-popup mask alone
over all ResNet-50 layers, each way of computing it.

CPU: one torch thread by default (`--threads`); `page_faults_per_step` counts minor page faults,
i.e. freshly mapped memory the kernel zero-fills: glibc hands every allocation over 32 MiB
straight back to the OS, so K-times-larger gradient tensors are paid for again every step.

Memory (`peak_mem_mb`): what one trial of that method needs at its peak: its state (weights or K
values, scores, BatchNorm buffers, optimiser momentum) plus the largest amount of tensor memory
live at once during one step (activations saved for backward, gradients, temporaries). On CUDA the
peak is `torch.cuda.max_memory_allocated` over the step; on CPU it is the high-water mark of the
PyTorch CPU allocator's allocation/free events recorded by the profiler over one step (tensor
memory only: no interpreter, library or allocator overhead, no oneDNN scratch space).
`act_mem_mb` is the memory live at the end of the forward pass (saved activations, effective
weights, masks), relative to the step's start.

    python benchmarks/step_time.py --device cpu --models conv6 resnet18 --json out.json
    python benchmarks/step_time.py --device cpu --mask-timing --before 51860cd
    python benchmarks/step_time.py --device cuda --models conv6 resnet50 --precision bf16 \
        --ref-precision fp32 --channels-last --json h100.json
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_impls import REFERENCE_OF, reference_model  # noqa: E402

from hiddenlab.study.trainer import make_optimizer  # noqa: E402
from hiddenlab.models import MODELS, build_model  # noqa: E402
from hiddenlab.models.selection import SelectionLayer  # noqa: E402
from hiddenlab.config import TrialConfig  # noqa: E402

METHODS = ["dense", "edgepopup", "supermask", "slot-gs", "slot-ps"]
DEFAULT_METHODS = ["dense", "edgepopup", "supermask", "slot-gs",
                   "ref-edgepopup", "ref-supermask", "ref-slot-gs"]
# (input shape, batch) per model: the sizes on CUDA, reduced ones on a CPU.
SIZES = {
    "cuda": {"conv6": ((3, 32, 32), 128), "resnet18": ((3, 224, 224), 256),
             "resnet50": ((3, 224, 224), 256)},
    "cpu": {"conv6": ((3, 32, 32), 128), "resnet18": ((3, 64, 64), 32),
            "resnet50": ((3, 64, 64), 32), "lenet-300-100": ((1, 28, 28), 128),
            "conv4": ((3, 32, 32), 128)},
}


# --- building -------------------------------------------------------------------------------------
BEFORE = "before:"


def base_method(method: str) -> str:
    """The hiddenlab method a row's network is built for (ref-slot-gs -> slot-gs)."""
    if method.startswith(BEFORE):
        return method[len(BEFORE):]
    return REFERENCE_OF.get(method, method)


def trial_config(method: str, model: str, K: int, k: float) -> TrialConfig:
    base = base_method(method)
    kw = dict(K=K) if base.startswith("slot") else {}
    if base == "edgepopup":
        kw["k"] = k
    return TrialConfig(method=base, model=model, **kw)


def share_frozen(target: nn.Module, source: nn.Module) -> None:
    """Point target's frozen weights at source's where they are equal (same seed, same init):
    halves the memory of a side-by-side run, changes nothing a step computes."""
    src = {n: m for n, m in source.named_modules() if isinstance(m, SelectionLayer)}
    for name, layer in target.named_modules():
        other = src.get(name)
        if (isinstance(layer, SelectionLayer) and other is not None
                and not layer.weight.requires_grad and not other.weight.requires_grad
                and layer.weight.shape == other.weight.shape
                and layer.weight.dtype == other.weight.dtype
                and torch.equal(layer.weight, other.weight)):
            layer.weight = other.weight  # a registered buffer: replaced in place


def to_channels_last(net: nn.Module) -> None:
    """Channels-last for every 4-D parameter and buffer. Not `net.to(memory_format=...)`: that
    also converts 5-D tensors and raises on slot machines' (out, in, kh, kw, K) values."""
    with torch.no_grad():
        for t in itertools.chain(net.parameters(), net.buffers()):
            if t.dim() == 4:
                t.data = t.data.contiguous(memory_format=torch.channels_last)


class Runner:
    """One (method, model): network, optimiser, data, and a `step()`."""

    def __init__(self, method, model, input_shape, batch, args, device, built):
        self.method, self.model, self.batch = method, model, batch
        base = base_method(method)
        cfg = trial_config(method, model, args.K, args.k)
        torch.manual_seed(0)
        if method.startswith(BEFORE):
            if base not in built:
                raise ValueError(f"{method} needs {base} in --methods (it copies its tensors)")
            net = before_model(built[base], args.before_layers)
        elif method in REFERENCE_OF and base in built:
            net = reference_model(built[base])  # the same weights and scores as `base`
        else:
            net = build_model(cfg, input_shape, 10)
            for other in built.values():
                share_frozen(net, other)
            if method in REFERENCE_OF:
                net = reference_model(net)
        self.net = net.to(device)
        if method == base:
            built[method] = self.net
        self.channels_last = args.channels_last
        if args.channels_last:
            to_channels_last(self.net)
        self.forward = torch.compile(self.net) if args.compile else self.net
        params = [p for p in self.net.parameters() if p.requires_grad]
        if method in REFERENCE_OF or args.unfused_sgd:
            # the reference code's optimiser: torch's default (per-tensor / foreach) SGD
            self.opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=1e-4)
        else:  # the trainer's own optimiser (fused SGD where torch has it)
            self.opt = make_optimizer(cfg.replace(optimizer="sgd", lr=1e-3, momentum=0.9,
                                                  weight_decay=1e-4), params)
        self.criterion = nn.CrossEntropyLoss()
        g = torch.Generator().manual_seed(1)
        x = torch.randn(batch, *input_shape, generator=g)
        self.x = x.to(device, memory_format=torch.channels_last if args.channels_last
                      else torch.contiguous_format)
        self.y = torch.randint(0, 10, (batch,), generator=g).to(device)
        self.precision = (args.ref_precision or args.precision) if method in REFERENCE_OF \
            else args.precision
        self.autocast = (torch.autocast(device.type, dtype=torch.bfloat16)
                         if self.precision == "bf16" else contextlib.nullcontext())
        self.net.train()

    def selection_step(self):
        """The selection work of a step alone: every layer's effective weight (training mode)
        and its backward to the scores from a fixed upstream gradient; no convolutions."""
        if not hasattr(self, "_upstream"):
            self._layers = [m for m in self.net.modules() if hasattr(m, "effective_weight")]
            g = torch.Generator().manual_seed(2)
            self._upstream = [torch.randn(m.effective_weight().shape, generator=g).to(self.x.device)
                              for m in self._layers]
        for layer, g in zip(self._layers, self._upstream):
            w = layer.effective_weight()
            if w.requires_grad:
                w.backward(g)
        for p in self.opt.param_groups[0]["params"]:
            p.grad = None

    def step(self, forward_scope=None, after_forward=None):
        with forward_scope or contextlib.nullcontext(), self.autocast:
            logits = self.forward(self.x)
            loss = self.criterion(logits.float(), self.y)
        if after_forward is not None:
            after_forward()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def state_bytes(self) -> int:
        """Bytes of what a trial keeps between steps (each storage once)."""
        seen, total = set(), 0
        tensors = itertools.chain(self.net.parameters(), self.net.buffers(),
                                  (t for s in self.opt.state.values() for t in s.values()
                                   if torch.is_tensor(t)))
        for t in tensors:
            key = t.untyped_storage().data_ptr()
            if key not in seen:
                seen.add(key)
                total += t.untyped_storage().nbytes()
        return total


# --- the selection layers of an earlier revision ("before" rows) ---------------------------------
def load_revision(rev: str):
    """models/selection/{base,edgepopup,supermask,slot}.py as of git revision `rev`, imported as
    a throw-away package, so one run can time the old layers beside the current ones."""
    import importlib
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parents[1]
    pkg = Path(tempfile.mkdtemp(prefix="hiddenlab_before_")) / "hiddenlab_before"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("base", "edgepopup", "supermask", "slot"):
        src = subprocess.run(["git", "-C", str(root), "show", f"{rev}:models/selection/{name}.py"],
                             check=True, capture_output=True, text=True).stdout
        (pkg / f"{name}.py").write_text(src)
    sys.path.insert(0, str(pkg.parent))
    return {n: importlib.import_module(f"hiddenlab_before.{n}")
            for n in ("edgepopup", "supermask", "slot")}


def before_model(model: nn.Module, old) -> nn.Module:
    """`model` with each selection layer replaced by the old revision's class on the same frozen
    tensor (shared) and a copy of the scores."""
    from hiddenlab.models.selection.edgepopup import EdgePopupLayer
    from hiddenlab.models.selection.slot import SlotLayer
    from hiddenlab.models.selection.supermask import SupermaskLayer

    def convert(layer):
        s = layer.scores.detach().clone()
        if isinstance(layer, EdgePopupLayer):
            return old["edgepopup"].EdgePopupLayer(layer.spec, layer.weight, s, layer.k,
                                                   layer.use_abs)
        if isinstance(layer, SupermaskLayer):
            return old["supermask"].SupermaskLayer(layer.spec, layer.weight, s, layer.eval_mode,
                                                   layer.scale)
        if isinstance(layer, SlotLayer):
            return old["slot"].SlotLayer(layer.spec, layer.weight, s, layer.train_mode,
                                         layer.eval_mode)
        return layer

    memo = {id(m.weight): m.weight for m in model.modules()
            if isinstance(m, SelectionLayer) and not m.weight.requires_grad}
    out = copy.deepcopy(model, memo)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SelectionLayer) and child.method != "dense":
                setattr(parent, name, convert(child))
    return out


# --- measuring ------------------------------------------------------------------------------------
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_memory(r: Runner, device) -> tuple[float, float]:
    """(peak MiB of one step incl. state, MiB live at the end of forward above the step's start)."""
    r.opt.zero_grad(set_to_none=True)  # the step starts with no gradients held
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        fwd = []
        r.step(after_forward=lambda: fwd.append(torch.cuda.memory_allocated(device)))
        sync(device)
        peak = torch.cuda.max_memory_allocated(device)
        return peak / 2**20, (fwd[0] - start) / 2**20
    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        r.step(forward_scope=record_function("hiddenlab_forward"))
    events = prof.profiler.kineto_results.events()
    forward_end = max(e.end_ns() for e in events if e.name() == "hiddenlab_forward")
    memory = sorted((e for e in events if e.name() == "[memory]"
                     and str(e.device_type()).endswith("CPU")), key=lambda e: e.start_ns())
    live, peak, at_forward_end = 0, 0, None
    for e in memory:
        if at_forward_end is None and e.start_ns() > forward_end:
            at_forward_end = live
        live += e.nbytes()
        peak = max(peak, live)
    at_forward_end = live if at_forward_end is None else at_forward_end
    return (r.state_bytes() + peak) / 2**20, at_forward_end / 2**20


def minor_faults() -> int:
    """Minor page faults of this process so far (fresh pages the kernel had to zero-fill)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_methods(runners: list[Runner], steps: int, repeats: int, warmup: int, device,
                 selection_only: bool = False):
    run = (lambda r: r.selection_step()) if selection_only else (lambda r: r.step())
    for r in runners:
        for _ in range(warmup):
            run(r)
    sync(device)
    times = {r.method: [] for r in runners}
    faults = {r.method: 0 for r in runners}
    for rep in range(repeats):
        order = runners[rep % len(runners):] + runners[:rep % len(runners)]
        for r in order:
            sync(device)
            f0 = minor_faults()
            t0 = time.perf_counter()
            for _ in range(steps):
                run(r)
            sync(device)
            times[r.method].append((time.perf_counter() - t0) * 1e3 / steps)
            faults[r.method] += minor_faults() - f0
    return times, {m: f / (steps * repeats) for m, f in faults.items()}


def bench_model(model, methods, args, device) -> list[dict]:
    shape, batch = SIZES[device.type].get(model, (MODELS[model].input_shape, 128))
    shape = tuple(args.input) if args.input else shape
    batch = args.batch or batch
    built: dict[str, nn.Module] = {}
    runners = []
    # new-formulation models first, so each ref-* model copies its counterpart's tensors
    for method in sorted(methods, key=lambda m: base_method(m) != m):
        runners.append(Runner(method, model, shape, batch, args, device, built))
    runners.sort(key=lambda r: methods.index(r.method))
    mem = {}
    for r in runners:
        if args.selection_only:
            mem[r.method] = (float("nan"), float("nan"))
            continue
        r.step()  # warm-up (momentum buffers exist from here on)
        mem[r.method] = measure_memory(r, device)
    times, faults = time_methods(runners, args.steps, args.repeats, args.warmup, device,
                                 args.selection_only)
    rows = []
    dense = times.get("dense")
    for r in runners:
        t = times[r.method]
        ms = statistics.median(t)
        row = {"method": r.method, "model": model, "batch": batch, "precision": r.precision,
               "ms_per_step": round(ms, 2), "images_per_s": round(batch / ms * 1e3, 1),
               "peak_mem_mb": round(mem[r.method][0], 1),
               "ratio_to_dense": (round(statistics.median(a / b for a, b in zip(t, dense)), 3)
                                  if dense else None),
               "act_mem_mb": round(mem[r.method][1], 1), "ms_min": round(min(t), 2),
               "page_faults_per_step": round(faults[r.method]),
               "ms_all": [round(v, 2) for v in t], "input_shape": list(shape),
               "device": args.device_name, "channels_last": args.channels_last,
               "compile": args.compile, "K": args.K if "slot" in r.method else None,
               "k": args.k if "edgepopup" in r.method else None, "threads": args.threads,
               "steps": args.steps, "repeats": args.repeats}
        if f"{BEFORE}{r.method}" in times:  # current vs the --before revision, paired per repeat
            row["speedup_vs_before"] = round(statistics.median(
                b / a for a, b in zip(t, times[f"{BEFORE}{r.method}"])), 3)
        ref = f"ref-{r.method}"
        if ref in times:  # new formulation vs the reference's, paired per repeat
            row["speedup_vs_ref"] = round(statistics.median(
                b / a for a, b in zip(t, times[ref])), 3)
        if args.selection_only:  # selection work alone: no images, no step memory, no dense ratio
            row.update(kind="selection", images_per_s=None, peak_mem_mb=None, act_mem_mb=None,
                       ratio_to_dense=None)
        else:
            row["kind"] = "step"
        rows.append(row)
    return rows


# --- per-layer top-k over all ResNet-50 layers ----------------------------------------------------
def mask_timing(device, repeats: int, k: float) -> list[dict]:
    """The edge-popup mask alone, every ResNet-50 layer's |scores|, each way of computing it."""
    from reference_impls import GetSubnet

    from hiddenlab.models.selection import edgepopup as ep

    torch.manual_seed(0)
    model = build_model(TrialConfig(method="edgepopup", model="resnet50", k=k), None, None)
    scores = [m.scores.detach().to(device) for m in model.modules()
              if isinstance(m, SelectionLayer)]  # raw scores: every way ranks |scores| itself
    del model

    def topk_threshold(s):
        flat = s.reshape(-1).abs()
        n = flat.numel()
        kept = ep.kept_count(n, k)
        if kept == n:
            return torch.ones_like(s, dtype=torch.bool)
        threshold = torch.topk(flat, kept, sorted=False).values.min()
        above, ties = flat > threshold, flat == threshold
        room = kept - above.sum()
        return (above | (ties & (torch.cumsum(ties, 0) <= room))).view_as(s)

    ways = {
        "sort + scatter (reference GetSubnet)": lambda s: GetSubnet.apply(s.abs(), k),
        "sort values + threshold": lambda s: ep.topk_mask(s, k, "sort", by_abs=True),
        "topk + threshold": topk_threshold,
        "kthvalue + threshold": lambda s: ep.topk_mask(s, k, "kthvalue", by_abs=True),
    }
    for way in getattr(ep, "THRESHOLD_WAYS", ()):
        if way not in ("sort", "kthvalue", "auto"):
            ways[f"{way} + threshold"] = (lambda w: lambda s: ep.topk_mask(s, k, w, by_abs=True))(way)
    ways["hiddenlab EdgePopupLayer.mask (auto)"] = lambda s: ep.topk_mask(s, k, by_abs=True)
    times = {w: [] for w in ways}
    for w, f in ways.items():  # warm-up
        f(scores[0])
    for rep in range(repeats):
        names = list(ways)
        names = names[rep % len(names):] + names[:rep % len(names)]
        for w in names:
            sync(device)
            t0 = time.perf_counter()
            for s in scores:
                ways[w](s)
            sync(device)
            times[w].append((time.perf_counter() - t0) * 1e3)
    return [{"way": w, "layers": len(scores), "connections": sum(s.numel() for s in scores),
             "ms": round(statistics.median(t), 1), "ms_all": [round(v, 1) for v in t],
             "device": None} for w, t in times.items()]


# --- output ---------------------------------------------------------------------------------------
def print_table(rows):
    cols = ["model", "method", "batch", "precision", "ms_per_step", "images_per_s",
            "peak_mem_mb", "act_mem_mb", "ratio_to_dense", "speedup_vs_ref"]
    if any("speedup_vs_before" in r for r in rows):
        cols.append("speedup_vs_before")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |")


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core CPU ({cpu}), {torch.get_num_threads()} torch threads"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", nargs="*", default=["conv6", "resnet18", "resnet50"],
                   choices=sorted(MODELS))
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS,
                   help=f"any of {', '.join(METHODS + sorted(REFERENCE_OF))}; with --before, "
                   f"also {BEFORE}<method> (default: %(default)s)")
    p.add_argument("--before", metavar="GIT_REV", default=None,
                   help="also time the selection layers of this git revision (rows "
                   f"'{BEFORE}<method>', on the same tensors): before/after of a change")
    p.add_argument("--batch", type=int, default=None, help="default: per model and device")
    p.add_argument("--input", type=int, nargs=3, default=None, metavar=("C", "H", "W"),
                   help="input shape (default: per model and device)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--ref-precision", choices=["fp32", "bf16"], default=None,
                   help="precision of the ref-* rows (default: --precision); the reference "
                   "code trains in fp32: `--precision bf16 --ref-precision fp32` compares "
                   "hiddenlab's recipe with the reference as published")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--unfused-sgd", action="store_true",
                   help="hiddenlab rows too use torch's default SGD instead of the trainer's "
                   "fused one (ref-* rows always do, as the reference code)")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per method per repeat (default: 1 on CPU, 10 on CUDA)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per method (after the "
                   "memory step); use more with --compile")
    p.add_argument("--K", type=int, default=8)
    p.add_argument("--k", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default on CPU: 1 -- on a shared 2-core machine two "
                   "OpenMP threads spin-wait on each other and a step takes ~3x longer)")
    p.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--selection-only", action="store_true",
                   help="time only the selection work of a step (effective weights of all "
                   "layers + their backward to the scores, no convolutions): the part the fast "
                   "paths change, free of the convolutions' noise")
    p.add_argument("--mask-timing", action="store_true",
                   help="also time the edge-popup mask alone over all ResNet-50 layers")
    p.add_argument("--mask-repeats", type=int, default=3)
    p.add_argument("--json", type=Path, default=None,
                   help="write the step rows here (a list of dicts); mask timings go to "
                   "<stem>.mask.json beside it")
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 1 if args.device == "cpu" else 10
    if args.threads is None and args.device == "cpu":
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    args.device_name = device_name(device)
    methods = list(dict.fromkeys(args.methods))
    if args.before:
        args.before_layers = load_revision(args.before)
        methods += [f"{BEFORE}{m}" for m in methods
                    if m in ("edgepopup", "supermask", "slot-gs", "slot-ps")
                    and f"{BEFORE}{m}" not in methods]
    for m in methods:
        if base_method(m) not in METHODS or (m.startswith(BEFORE) and not args.before):
            p.error(f"unknown method {m!r}")
    print(f"device: {args.device_name}; torch {torch.__version__}; precision {args.precision}; "
          f"{args.repeats} repeats x {args.steps} steps, methods interleaved", flush=True)
    rows = []
    for model in args.models:
        t0 = time.time()
        rows += bench_model(model, methods, args, device)
        print(f"# {model}: {time.time() - t0:.0f} s", flush=True)
        print_table([r for r in rows if r["model"] == model])
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    if args.mask_timing:
        t0 = time.time()
        mrows = mask_timing(device, args.mask_repeats, args.k)
        for r in mrows:
            r["device"] = args.device_name
        print(f"# per-layer top-k over all ResNet-50 layers ({mrows[0]['layers']} layers, "
              f"{mrows[0]['connections']:,} scores, k = {args.k}): {time.time() - t0:.0f} s")
        for r in mrows:
            print(f"| {r['way']} | {r['ms']} ms |")
        if args.json:
            args.json.with_name(args.json.stem + ".mask.json").write_text(json.dumps(mrows, indent=1))
    return rows


if __name__ == "__main__":
    main()
