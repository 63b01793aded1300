"""Counter-based randomness for everything that must be identical on every machine.

Splits and the synthetic data set are drawn from a splitmix64 hash of (key, counter) in pure
integer numpy arithmetic, not from a library RNG stream, so they cannot change with numpy/torch
versions or CPU features (SIMD code paths), and any element can be computed without the others.
"""

from __future__ import annotations

import zlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK63 = (1 << 63) - 1
_MASK64 = (1 << 64) - 1


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic is intended)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def _key_int(part: int | str) -> int:
    if isinstance(part, str):
        return zlib.crc32(part.encode())
    return int(part) & _MASK64


def _mix_int(z: int) -> int:
    """mix64 on one Python int: no numpy scalar overhead (seeds are drawn per image)."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def key_hash(*key: int | str) -> np.uint64:
    """One 64-bit value for a tuple of ints/strings."""
    h = 0x243F6A8885A308D3
    for part in key:
        h = _mix_int(h ^ _key_int(part))
    return np.uint64(h)


def stream(key: tuple, start: int, count: int) -> np.ndarray:
    """`count` uint64 values: elements start..start+count of the stream named by `key`."""
    counters = np.arange(start, start + count, dtype=np.uint64)
    return mix64(counters ^ key_hash(*key))


def uniform_ints(key: tuple, start: int, count: int, high: int) -> np.ndarray:
    """Integers in [0, high) (the modulo bias of 64-bit values is negligible here)."""
    return (stream(key, start, count) % np.uint64(high)).astype(np.int64)


def permutation(n: int, *key: int | str) -> np.ndarray:
    """A permutation of range(n) that depends only on `key`."""
    return np.argsort(stream(key, 0, n), kind="stable")


def seed_for(*key: int | str) -> int:
    """A 63-bit seed for torch/numpy generators, e.g. seed_for(cfg.seed, epoch, "train")."""
    return int(key_hash(*key)) & _MASK63
