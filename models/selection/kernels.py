"""Host (CPU) kernels shared by the selection layers.

On the CPU, torch's element-wise kernels that read or write bool tensors (comparisons, a weight
times a bool mask, `where`) run several times slower than its float kernels, and every fresh
weight-sized tensor costs page faults (glibc hands blocks over its mmap threshold back to the
OS on free). numpy's comparison, count and multiply loops are vectorised for bool, and work on
torch's memory without a copy (`Tensor.numpy()` / `torch.from_numpy`). So the selection layers
build their masks and masked weights here, with numpy, wherever the tensors allow it
(`host_ok`), and fall back to torch everywhere else (CUDA, torch.compile, other dtypes).
Every function returns exactly what the torch expression it replaces returns.

`tune_host_allocator()` is the process-wide fix for the page faults (see docs/performance.md): a
trainer-side call, not something a layer does behind the trainer's back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

import numpy as np
import torch

HOST_DTYPES = (torch.float32, torch.float64)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_MAX_THRESHOLD = 32 << 20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit
_tuned: bool | None = None
_thread = threading.local()  # host_generator's generator, one per thread


def tune_host_allocator(trim_threshold: int = 1 << 30) -> bool:
    """Keep freed host memory for reuse instead of returning it to the OS after every tensor.

    glibc serves blocks above its mmap threshold (128 KiB, moving up to 32 MiB only as such
    blocks are freed) with fresh mmaps and trims the heap top above its trim threshold, so a
    training step that allocates and frees weight-sized tensors pays page faults for each one,
    every step (1 MiB: ~0.1 ms of arithmetic, ~1 ms of faults measured on a shared 2-core VM).
    Pinning the mmap threshold at its 32 MiB ceiling and raising the trim threshold keeps those
    blocks in the heap. Process-wide and idempotent; returns False where there is no glibc
    `mallopt` (other C libraries, other systems): nothing changes there. Memory freed by the
    process stays mapped (its resident size is its high-water mark)."""
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_MAX_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
    return _tuned


SEED_WORDS = 3  # numbers of torch's stream a host draw takes
# Below this many numbers a draw keeps torch's generator: setting up the host generator costs
# ~15-50 us, which torch's mt19937 (~3.5 ns a number) spends on ~10,000 numbers.
HOST_DRAW_MIN = 1 << 14


def host_seed() -> tuple[int, int, int]:
    """The three numbers of torch's default CPU generator that seed a host draw."""
    return tuple(torch.randint(0, 2**63 - 1, (SEED_WORDS,), dtype=torch.int64).tolist())


def host_generator() -> np.random.Generator:
    """This thread's numpy generator (SFC64) for a host draw, its state set from three int64 of
    torch's default CPU generator: the draw is then as reproducible as torch's stream
    (`torch.manual_seed`, the trainer's per-epoch reseed, a packed member's own RNG state) and
    advances it by `SEED_WORDS` numbers. Why not torch's own: its CPU generator is mt19937, one
    32-bit word per number, ~3x slower per weight than SFC64's raw 64-bit words, and the draw is
    most of what a sampled mask costs. The state is set directly (12 outputs discarded, as
    SFC64's own seeding does) rather than through `SFC64(seed)`, whose SeedSequence took ~80 us
    per call inside a training step."""
    a, b, c = host_seed()
    gen = getattr(_thread, "generator", None)
    if gen is None:
        gen = _thread.generator = np.random.Generator(np.random.SFC64(0))
    gen.bit_generator.state = {"bit_generator": "SFC64", "has_uint32": 0, "uinteger": 0,
                               "state": {"state": np.array([a, b, c, 1], dtype=np.uint64)}}
    gen.bit_generator.random_raw(12)
    return gen


def random_bytes(gen: np.random.Generator, n: int) -> np.ndarray:
    """n uniform random bytes (uint8) from `gen`'s raw 64-bit output."""
    return gen.bit_generator.random_raw((n + 7) // 8).view(np.uint8)[:n]


def uniforms(n: int, dtype=np.float32) -> np.ndarray:
    """n uniforms on [0, 1) as a numpy array: `host_uniforms` from `HOST_DRAW_MIN` numbers on,
    `torch.rand` (the global generator) below."""
    if n >= HOST_DRAW_MIN:
        return host_uniforms(n, dtype)
    return torch.rand(n, dtype=torch.float32 if np.dtype(dtype) == np.float32
                      else torch.float64).numpy()


def host_uniforms(n: int, dtype=np.float32) -> np.ndarray:
    """n uniforms on [0, 1) from `host_generator()` (three numbers of torch's stream):
    float32 with the 24 random bits of `torch.rand` (two per raw 64-bit word: numpy's own
    float32 draw goes one 32-bit word at a time, ~2x slower), float64 with 53."""
    gen = host_generator()
    if np.dtype(dtype) != np.float32:
        return gen.random(n, dtype=dtype)
    words = gen.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n]
    bits = np.right_shift(words, np.uint32(8)).view(np.int32)   # < 2^24: exact in float32
    return np.multiply(bits.astype(np.float32), np.float32(2.0**-24))


def host_ok(*tensors: torch.Tensor) -> bool:
    """Whether numpy may compute on these tensors' memory directly: contiguous float32/float64
    on the CPU, outside torch.compile tracing."""
    if torch.compiler.is_compiling():
        return False
    return all(t.device.type == "cpu" and t.dtype in HOST_DTYPES and t.is_contiguous()
               for t in tensors)


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """The tensor's memory as a flat numpy array (no copy; `host_ok` must hold)."""
    return t.detach().reshape(-1).numpy()


def apply_mask(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`weight * mask` for a bool (or 0/1 float) mask: a fresh tensor, the same bits (w * 0 keeps
    the sign of w, as torch's does)."""
    if mask.dtype == torch.bool and host_ok(weight) and mask.is_contiguous() \
            and mask.device.type == "cpu" and mask.shape == weight.shape:
        w = as_numpy(weight)  # times the mask as floats: numpy's float x bool loop is slower
        out = np.multiply(w, mask.reshape(-1).numpy().astype(w.dtype))
        return torch.from_numpy(out).view(weight.shape)
    return weight * mask
