"""Fused host (CPU) kernels, compiled with numba: a selection step's per-weight work in one pass
over memory instead of several numpy passes.

A small fully connected network does ~128 multiply-adds per weight per step, so every extra
weight-sized pass (a comparison, a cast, a product, a random draw) is a visible share of its
step, and inside a step each pass runs on caches that the matrix products have just evicted.
numba is installed with FFCV (its JIT). The kernels live in fused_kernels.py, imported at the
first call (numba's own import is ~0.35 s, which processes that never draw on the host skip),
compiled at first use and cached on disk (`cache=True`: ~5 s once per checkout, ~0.1 s to load
in a new process). `available()` says whether they run; without numba (or with one that does
not import: a warning, once), or with HIDDENLAB_FUSED=0, the numpy paths (kernels.py,
supermask.py, slot.py, edgepopup.py) compute the same results.

What each kernel reproduces, and how exactly (tests/test_fused.py):
* `bernoulli_product`: supermask's `host_bernoulli` draw and `weight * mask`, bit for bit: the
  same SFC64 stream (`fused_kernels._sfc64_seeded` sets the state from three numbers of torch's
  stream as `kernels.host_generator` does), the same bytes, the same second uniforms in the same
  order.
* `sigmoid_mask_grad`: supermask's backward, `sigmoid_backward(grad * weight, p)`, bit for bit.
* `sign_mask_grad`: edge-popup's backward through |S|, `grad * weight * sgn(S)`, bit for bit.
* `categorical_pick`: slot-ps's draw (`slot.draw_k_first` on S = alpha S0 + gamma W with
  `kernels.uniforms`' uniforms), a block of connections at a time with their K partial sums in
  L1. Everything but exp is the same float32 arithmetic; exp is `fused_kernels._exp_rows`'
  (Cephes' expf, within 1 ulp; `exp_nonpositive`), so a pick can differ from the numpy path's
  only where u lands within a rounding of a boundary of the cumulative mass: the same
  distribution.
No fastmath anywhere: the float operations are the ones written, in the order written.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import warnings

import numpy as np

_F = np.float32

# HIDDENLAB_FUSED=0 runs the numpy paths instead (benchmarks compare the two; tests switch it).
ENABLED = os.environ.get("HIDDENLAB_FUSED", "1") != "0"


def available() -> bool:
    """Whether the layers use these kernels: `ENABLED` and numba importable. Asked at the
    first host kernel call, so numba (~0.35 s to import) loads only in processes that use it."""
    return ENABLED and _kernels() is not None


@functools.cache
def _kernels():
    """fused_kernels, or None where numba is missing or does not import (e.g. a numba built
    for another numpy): the numpy paths then run, after one warning."""
    if importlib.util.find_spec("numba") is None:
        return None
    try:
        return importlib.import_module(".fused_kernels", __package__)
    except Exception as e:  # noqa: BLE001 - any import failure means: no kernels
        warnings.warn(f"hiddenlab: numba does not import ({type(e).__name__}: {e}); the "
                      "selection layers use their numpy paths", RuntimeWarning, stacklevel=2)
        return None


def bernoulli_product(p: np.ndarray, w: np.ndarray, seed) -> tuple[np.ndarray, np.ndarray]:
    """(w * mask, mask) for mask ~ Bernoulli(p): exactly `supermask.host_bernoulli(p, gen)` and
    `kernels.apply_mask` for `gen` seeded by `seed` (three int64 of torch's stream). Flat,
    contiguous float32 p and w."""
    k = _kernels()
    s = k._sfc64_seeded(*seed)
    words = np.empty((p.size + 7) // 8, dtype=np.uint64)
    k._raw(s, words)
    out, mask = np.empty_like(w), np.empty(p.size, dtype=np.uint8)
    k._bernoulli_product(p, w, words.view(np.uint8), s, out, mask)
    return out, mask.view(np.bool_)


def sigmoid_mask_grad(grad: np.ndarray, w: np.ndarray, p: np.ndarray) -> np.ndarray:
    """((grad * w) * (1 - p)) * p: torch's `sigmoid_backward(grad * w, p)` on the CPU, bit for
    bit, in one pass (flat float32)."""
    k = _kernels()
    out = np.empty_like(grad)
    k._sigmoid_mask_grad(grad, w, p, out)
    return out


def sign_mask_grad(grad: np.ndarray, w: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(grad * w) * sgn(scores): edge-popup's backward through |S|, torch's `grad * weight`
    then `mul_(scores.sgn())` bit for bit (sgn 0 for NaN and for both zeros, as torch's) in one
    pass (flat float32)."""
    k = _kernels()
    out = np.empty_like(grad)
    k._sign_mask_grad(grad, w, scores, out)
    return out


def exp_nonpositive(x: np.ndarray) -> np.ndarray:
    """`_exp_rows`' exp of a flat float32 array (tests)."""
    k = _kernels()
    out = x.astype(np.float32).copy()
    k._exp_rows(out, np.zeros(out.size, dtype=np.float32), np.empty(out.size, dtype=np.int32),
                1, out.size, out.size)
    return out


def categorical_pick(s0: np.ndarray, w: np.ndarray, alpha: float, gamma: np.ndarray,
                     u: np.ndarray, want_index: bool = True, block: int = 1024):
    """(index int64 (n,) or None, chosen (n,)) for float32 s0, w laid out (K, n) and u (n,), or
    None where some scores are not finite (the numpy path defines those)."""
    k = _kernels()
    n = gamma.size
    index = np.empty(n if want_index else 0, dtype=np.int64)
    chosen = np.empty(n, dtype=np.float32)
    if not k._categorical_pick(s0, w, _F(alpha), gamma, u, index, chosen, block):
        return None
    return (index if want_index else None), chosen


@functools.cache
def compiled() -> bool:
    """Compile (or load from numba's cache) every kernel once, on tiny inputs; True if it
    worked. Benchmarks call it first so that compilation is not timed."""
    if _kernels() is None:
        return False
    p = np.full(16, 0.5, dtype=np.float32)
    bernoulli_product(p, p, (1, 2, 3))
    sigmoid_mask_grad(p, p, p)
    sign_mask_grad(p, p, p)
    exp_nonpositive(-p)
    categorical_pick(np.zeros((2, 16), dtype=np.float32), np.zeros((2, 16), dtype=np.float32),
                     1.0, p, p)
    return True
