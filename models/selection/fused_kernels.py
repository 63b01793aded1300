"""The numba kernels behind fused.py (imported by it on first use, so that importing the layers
does not import numba): see fused.py for what each reproduces and how exactly. No fastmath: the
float operations are the ones written, in the order written."""

from __future__ import annotations

import numba
import numpy as np

_U = np.uint64
_F = np.float32


def _jit(fn):
    return numba.njit(cache=True, nogil=True, error_model="numpy")(fn)


# --- SFC64, as numpy's bit generator -------------------------------------------------------------
@_jit
def _sfc64_next(s):
    """One raw 64-bit output of SFC64 (numpy's `sfc64_next`); s = [a, b, c, counter], updated."""
    a, b, c, d = s[0], s[1], s[2], s[3]
    tmp = a + b + d
    s[3] = d + _U(1)
    s[0] = b ^ (b >> _U(11))
    s[1] = c + (c << _U(3))
    s[2] = ((c << _U(24)) | (c >> _U(40))) + tmp
    return tmp


@_jit
def _sfc64_seeded(a, b, c):
    """The state `kernels.host_generator` sets: [a, b, c, 1], then 12 outputs discarded."""
    s = np.empty(4, dtype=np.uint64)
    s[0], s[1], s[2], s[3] = _U(a), _U(b), _U(c), _U(1)
    for _ in range(12):
        _sfc64_next(s)
    return s


@_jit
def _raw(s, words):
    for k in range(words.size):
        words[k] = _sfc64_next(s)


@_jit
def _uniform24(word, high):
    """numpy's float32 `random` / torch.rand's grid: the top 24 bits of a 32-bit half."""
    half = (word >> _U(32)) if high else (word & _U(0xFFFFFFFF))
    return _F(np.int64(half >> _U(8))) * _F(1.0 / 16777216.0)


# --- supermask ---------------------------------------------------------------------------------
@_jit
def _floor_256p(t):
    """floor(t) clipped to [0, 255], NaN to 0 (`host_bernoulli`'s cast)."""
    t = t if t > _F(0.0) else _F(0.0)
    return np.floor(t if t < _F(255.0) else _F(255.0))


@_jit
def _bernoulli_product(p, w, bytes_, s, out, mask):
    """mask[i] = byte[i] < floor(256 p[i]), out = w * mask; a byte equal to the floor leaves
    the weight open (marked 2), and a second pass settles those in index order with numpy's
    float32 uniforms from s: v < 256 p - floor(256 p). The first loop vectorises."""
    n = p.size
    for i in range(n):
        whole = _floor_256p(p[i] * _F(256.0))
        b = _F(bytes_[i])
        m = b < whole
        mask[i] = np.uint8(m) + np.uint8(2) * np.uint8(b == whole)
        out[i] = w[i] * _F(np.int32(m))   # 1.0 or 0.0, branch-free
    word, buffered = _U(0), False   # numpy's uint32 buffer: low half first, then high
    for i in range(n):
        if mask[i] >= 2:
            if not buffered:
                word = _sfc64_next(s)
            v = _uniform24(word, buffered)
            buffered = not buffered
            t = p[i] * _F(256.0)
            m = v < t - _floor_256p(t)
            mask[i] = m
            out[i] = w[i] * _F(np.int32(m))   # 1.0 or 0.0, branch-free


@_jit
def _sigmoid_mask_grad(grad, w, p, out):
    for i in range(grad.size):
        out[i] = grad[i] * w[i] * (_F(1.0) - p[i]) * p[i]


# --- edge-popup ---------------------------------------------------------------------------------
@_jit
def _sign_mask_grad(grad, w, s, out):
    for i in range(grad.size):
        v = s[i]
        sgn = _F(np.int32(v > _F(0.0)) - np.int32(v < _F(0.0)))   # torch's sgn, branch-free
        out[i] = grad[i] * w[i] * sgn


# --- slot-ps: the categorical draw -------------------------------------------------------------
@_jit
def _exp_rows(buf, top, bits, K, B, m):
    """buf[j, i] = exp(buf[j, i] - top[i]) for the K rows (of B) of a block, columns < m:
    Cephes' expf (2^n times a degree-6 polynomial on |r| <= ln2 / 2; within 1 ulp) for
    arguments <= 0, 0 below -87 (where float32 turns subnormal), NaN for NaN. 2^n is built in
    its exponent bits (`bits`, an int32 scratch viewed as float32) by a first loop, so both
    loops vectorise."""
    for j in range(K):
        row, rb = buf[j * B:j * B + m], bits[j * B:j * B + m]
        for i in range(m):
            v = row[i] - top[i]
            v = v if v >= _F(-87.0) else _F(-87.0)   # NaN -> -87: a defined integer
            n = np.floor(v * _F(1.44269504088896341) + _F(0.5))
            rb[i] = (np.int32(n) + np.int32(127)) << np.int32(23)
    scale = bits.view(np.float32)
    for j in range(K):
        row, rs = buf[j * B:j * B + m], scale[j * B:j * B + m]
        for i in range(m):
            x = row[i] - top[i]
            v = _F(-87.0) if x < _F(-87.0) else x
            n = np.floor(v * _F(1.44269504088896341) + _F(0.5))
            r = v - n * _F(0.693359375)
            r = r + n * _F(2.12194440e-4)
            y = _F(1.9875691500e-4) * r + _F(1.3981999507e-3)
            y = y * r + _F(8.3334519073e-3)
            y = y * r + _F(4.1665795894e-2)
            y = y * r + _F(1.6666665459e-1)
            y = y * r + _F(5.0000001201e-1)
            y = y * (r * r) + r + _F(1.0)
            row[i] = _F(0.0) if x < _F(-87.0) else y * rs[i]


@_jit
def _pick_block(s0, w, alpha, gamma, u, start, m, buf, bits, top, acc, count, chosen):
    """`_categorical_pick` for connections start .. start + m - 1 into count and chosen (the
    drawn values' bits, selected as the count grows: no gather); False if one's total mass is
    not finite."""
    K, B = s0.shape[0], top.size
    g = gamma[start:start + m]
    for j in range(K):
        row, s0j, wj = buf[j * B:j * B + m], s0[j, start:start + m], w[j, start:start + m]
        for i in range(m):
            row[i] = s0j[i] * alpha + wj[i] * g[i]
    for i in range(m):
        top[i] = buf[i]
    for j in range(1, K):
        row = buf[j * B:j * B + m]
        for i in range(m):
            top[i] = max(top[i], row[i])
    _exp_rows(buf, top, bits, K, B, m)
    for j in range(1, K):
        row, prev = buf[j * B:j * B + m], buf[(j - 1) * B:(j - 1) * B + m]
        for i in range(m):
            row[i] = row[i] + prev[i]   # C_j, summed in order
    last, w_bits = buf[(K - 1) * B:(K - 1) * B + m], w.view(np.int32)
    w0, uu, good = w_bits[0, start:start + m], u[start:start + m], 0
    for i in range(m):
        acc[i] = uu[i] * last[i]
        count[i] = 0
        chosen[i] = w0[i]
        good += np.int32(last[i] >= _F(1.0))   # the top score alone gives 1; NaN fails
    for j in range(K - 1):
        row, nxt = buf[j * B:j * B + m], w_bits[j + 1, start:start + m]
        for i in range(m):
            le = np.int32(row[i] <= acc[i])
            count[i] += le
            chosen[i] = chosen[i] ^ ((chosen[i] ^ nxt[i]) & -le)   # W[count, c], branch-free
    return good == m


@_jit
def _categorical_pick(s0, w, alpha, gamma, u, index, chosen, block):
    """For every connection c: S_j = alpha S0[j, c] + gamma[c] W[j, c], e_j = exp(S_j - max S),
    C_j = e_0 + ... + e_j, index = #{j < K - 1 : C_j <= u[c] C_{K-1}}, chosen = W[index, c],
    a block of connections at a time (their K partial sums stay in cache). index may be empty
    (not wanted). False, with nothing defined, if some connection's scores are not all
    finite."""
    K, n = s0.shape
    buf = np.empty(K * block, dtype=np.float32)
    bits = np.empty(K * block, dtype=np.int32)
    top, acc = np.empty(block, dtype=np.float32), np.empty(block, dtype=np.float32)
    count, picked = np.empty(block, dtype=np.int32), np.empty(block, dtype=np.int32)
    out = chosen.view(np.int32)
    for start in range(0, n, block):
        m = min(block, n - start)
        if not _pick_block(s0, w, alpha, gamma, u, start, m, buf, bits, top, acc, count,
                           picked):
            return False
        out[start:start + m] = picked[:m]
        if index.size:
            index[start:start + m] = count[:m]
    return True
