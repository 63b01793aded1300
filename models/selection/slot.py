"""Slot Machines (Aladago & Torresani 2021): the layer and options that slot_gs.py and slot_ps.py
share.

Slot Machines (Aladago & Torresani 2021): K fixed random values per connection, K scores; the
forward uses one value per connection, picked greedily (GS, argmax) or sampled from
softmax(scores) (PS: one exact categorical draw per connection per pass).

Values and scores are stored with K last, and the pick is an index gather (the reference
multiplies a one-hot K-tensor: K times the work). Backward: dL/dS[..., j] = dL/dW_eff * W[..., j]
for every j, selected or not.

PS draws by inverse CDF: one uniform u per connection and the first j whose cumulative softmax
mass exceeds u. Before, it drew by Gumbel-max (K exponentials per connection, `gumbel_argmax`,
kept for comparison): the same distribution, but K times the random numbers, and torch's CPU
exponential sampler is slow (~25x the cost per step on LeNet-300-100). On the CPU the uniforms
come from `kernels.uniforms` (an SFC64 generator whose state is three numbers of torch's
stream, 24 bits each as `torch.rand`'s, at a third of its cost; `torch.rand` itself for layers
under `HOST_DRAW_MIN` connections) and the arithmetic runs K-first in numpy, with numpy's exp
(within 2 ulp of torch's, ~2.5x faster); with numba the factored layer's draw is one blocked
pass instead (`fused.categorical_pick`: the same uniforms and float32 arithmetic, Cephes' exp
within 1 ulp); elsewhere `torch.rand` and torch's ops. The stream
changed twice (Gumbel-max, then these uniforms): a PS trial's picks differ from those of earlier
revisions for a given seed (tests/test_perf_slot.py checks the distribution by a chi-square
test).

Factored scores (`factorize`, SGD only; docs/performance.md): under SGD (momentum, weight decay,
Nesterov, dampening) the K-wide scores of every connection stay of the form
S = alpha * S0 + gamma[c] * W[c, :], S0 the initial scores, W the K values, alpha one number per
layer and gamma one per connection, because every gradient dL/dS[c, :] = g[c] * W[c, :] lies in
that span and SGD's update is linear. SGD on S is then SGD on (alpha, gamma) with gradients
(0, g): `FactoredSlotLayer` trains those two parameters, so the optimiser, the gradient and the
checkpointed momentum hold one number per connection instead of K. GS keeps its argmax
incrementally: i = argmax_j S0_j + t W_j (t = gamma / alpha) stays the argmax while t is inside
an interval computed once per change, so a step recomputes only the connections whose t left
theirs. Exact in real arithmetic; in floating point the scores differ from explicit SGD's by
rounding (measured in docs/performance.md, tested in tests/test_perf_slot.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hiddenlab.config import SCORE_INITS, param

from ..inits import init_scores, init_weights
from .layers import LayerSpec, SelectionLayer
from .method import BASE_RECIPE, Method, SelectionOptions
from . import fused
from .kernels import host_ok, uniforms
from .packing import INDEX_BITS


class SlotGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, scores, index):
        ctx.save_for_backward(values)
        return values.gather(-1, index.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def backward(ctx, grad):
        (values,) = ctx.saved_tensors
        return None, grad.unsqueeze(-1) * values, None


def gumbel_argmax(scores: torch.Tensor) -> torch.Tensor:
    """A sample of Categorical(softmax(scores)) along the last axis by Gumbel-max (K random
    numbers per row; the PS draw of earlier revisions)."""
    gumbel = -torch.empty_like(scores).exponential_().log()
    return (scores + gumbel).argmax(-1)


def categorical_draw(logits: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
    """A sample of Categorical(softmax(logits)) along the last axis by inverse CDF: one uniform
    per row (`u`; default `kernels.uniforms` on the CPU, `torch.rand` elsewhere) and
    index = #{j < K - 1 : C_j <= u * C_{K-1}}, where C_j = e_0 + ... + e_j (float32, summed in
    order) and e_j = exp(logits_j - max logits). A value whose mass underflows to 0 is never
    picked; the last index takes what rounding leaves of [0, 1). On the CPU the K values of all
    rows are laid out K-first for the arithmetic (`draw_k_first`, numpy's exp); elsewhere
    torch's ops (torch's exp: the two agree to the exp's last-ulp rounding)."""
    K = logits.shape[-1]
    if host_ok(logits) and (u is None or host_ok(u)):
        rows = logits.numel() // K
        u_ = uniforms(rows, logits.detach().numpy().dtype) if u is None else u.reshape(-1).numpy()
        k_first = np.ascontiguousarray(logits.detach().reshape(-1, K).numpy().T)
        return torch.from_numpy(draw_k_first(k_first, u_)).view(logits.shape[:-1])
    if u is None:
        u = torch.rand(logits.shape[:-1], dtype=logits.dtype, device=logits.device)
    mass = (logits - logits.amax(-1, keepdim=True)).exp_()
    for j in range(1, K):  # in order, float32: what the host path computes
        mass[..., j] += mass[..., j - 1]
    return (mass[..., :-1] <= u.unsqueeze(-1) * mass[..., -1:]).sum(-1)


def draw_k_first(logits: np.ndarray, u: np.ndarray) -> np.ndarray:
    """`categorical_draw` for logits laid out (K, n) (overwritten) and u (n,): int64 (n,)."""
    K = logits.shape[0]
    np.subtract(logits, logits.max(axis=0), out=logits)
    np.exp(logits, out=logits)
    for j in range(1, K):
        np.add(logits[j - 1], logits[j], out=logits[j])
    bar = np.multiply(u, logits[-1])
    count = np.zeros(logits.shape[1], dtype=np.uint8 if K <= 255 else np.int32)
    for j in range(K - 1):  # a running count: numpy's bool sum over an axis is slow
        np.add(count, np.less_equal(logits[j], bar), out=count, casting="unsafe")
    return count.astype(np.int64)


class SlotLayer(SelectionLayer):
    method = "slot"

    def __init__(self, spec: LayerSpec, values: torch.Tensor, scores: torch.Tensor,
                 train_mode: str, eval_mode: str):
        super().__init__(spec)
        assert values.shape[:-1] == spec.shape, (values.shape, spec.shape)
        self.register_buffer("weight", values)  # (*shape, K)
        self.scores = nn.Parameter(scores)
        self.train_mode = train_mode  # "argmax" (GS) or "sample" (PS)
        self.eval_mode = eval_mode

    @property
    def K(self) -> int:
        return self.weight.shape[-1]

    def _mode(self) -> str:
        return self.train_mode if self.training else self.eval_mode

    def index(self) -> torch.Tensor:
        with torch.no_grad():
            if self._mode() == "sample":
                return categorical_draw(self.scores)
            return self.scores.argmax(-1)

    def compute_weight(self) -> torch.Tensor:
        return SlotGather.apply(self.weight, self.scores, self.index())

    def cache_key(self):
        return None if self._mode() == "sample" else self.scores._version

    @torch.no_grad()
    def selection(self):
        return self.scores.argmax(-1)

    @torch.no_grad()
    def set_index(self, index: torch.Tensor) -> None:
        """Make `index` (one per connection) the selection: one-hot scores (a loaded network)."""
        self.scores.copy_(F.one_hot(index.long(), self.K).to(self.scores.dtype))


# --- factored scores (SGD) ---------------------------------------------------------------------
class FactoredGather(torch.autograd.Function):
    """Forward: the chosen values (a copy). Backward: gamma gets dL/dW_eff, alpha gets 0: with
    these, SGD on (alpha, gamma) is SGD on S = alpha * S0 + gamma * W (the module docstring)."""

    @staticmethod
    def forward(ctx, chosen, alpha, gamma):
        return chosen.clone()

    @staticmethod
    def backward(ctx, grad):
        return None, torch.zeros((), dtype=grad.dtype, device=grad.device), grad


def ratio(gamma: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """t = gamma / alpha, IEEE division element by element (float32)."""
    if host_ok(gamma):
        a = gamma.new_tensor(float(alpha.detach())).numpy()
        return torch.from_numpy(np.divide(gamma.detach().reshape(-1).numpy(), a)).view_as(gamma)
    return gamma.detach() / alpha.detach()


def upper_envelope(s0: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row's upper envelope of its K lines y_j(t) = s0_j + t w_j (float64 (n, K)): the
    lines that are the argmax (first index among equal lines) as t runs from -inf to +inf, in
    order (`line`, (n, K), the last one repeated), and the breakpoints between them (`bp`,
    (n, K - 1), ascending, +inf once the envelope ends). From a line i the next is the one of a
    steeper slope that crosses it first, the steepest of those crossing there."""
    n, K = s0.shape
    rows = np.arange(n)
    cur = np.where(w == w.min(1, keepdims=True), s0, -np.inf).argmax(1)  # t -> -inf
    line = np.empty((n, K), dtype=np.int64)
    bp = np.full((n, K - 1), np.inf)
    line[:, 0] = cur
    x = np.full(n, -np.inf)
    for m in range(K - 1):
        slope = w - w[rows, cur][:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = (s0[rows, cur][:, None] - s0) / slope
        cross = np.where(slope > 0, cross, np.inf)
        first = cross.min(1)
        nxt = np.where(cross == first[:, None], w, -np.inf).argmax(1)
        going = np.isfinite(first)
        x = np.where(going, np.maximum(first, x), x)  # rounding never walks back
        bp[:, m] = np.where(going, x, np.inf)
        cur = np.where(going, nxt, cur)
        line[:, m + 1] = cur
    return line, bp


def round_down32(x: np.ndarray) -> np.ndarray:
    """The largest float32 <= x (float64 x; -inf below float32's range)."""
    d = x.astype(np.float32)
    return np.where(d > x, np.nextafter(d, np.float32(-np.inf)), d)


class IncrementalArgmax:
    """argmax_j S0[c, j] + t[c] * W[c, j] (first index among ties) for every connection c, kept
    between calls as t moves.

    Each connection's K lines have an upper envelope (`upper_envelope`, computed once): the
    argmax is its line m for t between its breakpoints m - 1 and m. The breakpoints are stored
    rounded down to float32 (D, with -inf before the first and +inf after the last), and a
    float32 t with D[m] < t < D[m + 1] is strictly inside the exact segment (t > D <=> t > B
    for B rounded down to D; t < D implies t < B). A call compares t with each connection's
    current segment and walks those outside it to their new one, a neighbour at a time (t moves
    little per step: one or two). A t that lands on a stored breakpoint (or is not finite) is
    settled by the direct computation (`_recompute`: float64, first index among ties, the exact
    interval rounded inwards)."""

    CHUNK = 1 << 17  # rows handled at once (bounds the float64 temporaries)

    def __init__(self, scores0: torch.Tensor, values: torch.Tensor):
        K = values.shape[-1]
        self.K = K
        self.s0 = scores0.detach().reshape(-1, K).numpy()
        self.w = values.detach().reshape(-1, K).numpy()
        n = self.w.shape[0]
        self.index = np.zeros(n, dtype=np.int64)
        self.chosen = np.empty(n, dtype=self.w.dtype)
        self.lo = np.full(n, np.inf, dtype=np.float32)  # empty intervals: all stale
        self.hi = np.full(n, -np.inf, dtype=np.float32)
        self.seg = np.zeros(n, dtype=np.int64)          # where the walk starts
        self.line = np.empty((n, K), dtype=np.int8 if K <= 127 else np.int16)
        self.bounds = np.empty((n, K + 1), dtype=np.float32)  # D[-1], D[0], ..., D[K-1]
        self.bounds[:, 0], self.bounds[:, K] = -np.inf, np.inf
        for start in range(0, n, self.CHUNK):
            part = slice(start, start + self.CHUNK)
            line, bp = upper_envelope(self.s0[part].astype(np.float64),
                                      self.w[part].astype(np.float64))
            self.line[part], self.bounds[part, 1:K] = line, round_down32(bp)
        self.recomputed = 0  # rows that left their segment at the last update (benchmarks/tests)
        self.direct = 0      # of those, rows settled by the direct computation

    def update(self, t: np.ndarray) -> None:
        inside = np.greater(t, self.lo)
        inside &= np.less(t, self.hi)
        rows = np.flatnonzero(~inside)
        self.recomputed = rows.size
        self.direct = 0
        for start in range(0, rows.size, self.CHUNK):
            self._move(rows[start:start + self.CHUNK], t)

    def _move(self, rows: np.ndarray, t: np.ndarray) -> None:
        K, tr = self.K, t[rows]
        bounds = self.bounds.reshape(-1)
        base = rows * (K + 1)
        seg = self.seg[rows]
        for _ in range(K):
            up = np.greater_equal(tr, bounds[base + seg + 1]) & (seg < K - 1)
            down = np.less_equal(tr, bounds[base + seg]) & (seg > 0)
            if not (up.any() or down.any()):
                break
            seg += up
            seg -= down
        lo, hi = bounds[base + seg], bounds[base + seg + 1]
        ok = np.greater(tr, lo) & np.less(tr, hi)  # false on a breakpoint, and for NaN
        self.seg[rows] = seg
        good, seg = rows[ok], seg[ok]
        index = self.line.reshape(-1)[good * K + seg].astype(np.int64)
        self.index[good] = index
        self.chosen[good] = self.w.reshape(-1)[good * K + index]
        self.lo[good], self.hi[good] = lo[ok], hi[ok]
        if not ok.all():
            direct = rows[~ok]
            self.direct += direct.size
            self._recompute(direct, t)

    def _recompute(self, rows: np.ndarray, t: np.ndarray) -> None:
        s0 = self.s0[rows].astype(np.float64)
        w = self.w[rows].astype(np.float64)
        tt = t[rows].astype(np.float64)[:, None]
        i = np.argmax(s0 + tt * w, axis=1)
        s0_i = np.take_along_axis(s0, i[:, None], 1)
        w_i = np.take_along_axis(w, i[:, None], 1)
        slope = w_i - w
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = (s0 - s0_i) / slope  # where j's line crosses i's
        lo = np.where(slope > 0, cross, -np.inf).max(1)
        hi = np.where(slope < 0, cross, np.inf).min(1)
        lo32, hi32 = lo.astype(np.float32), hi.astype(np.float32)
        lo32 = np.where(lo32 < lo, np.nextafter(lo32, np.float32(np.inf)), lo32)
        hi32 = np.where(hi32 > hi, np.nextafter(hi32, np.float32(-np.inf)), hi32)
        self.index[rows] = i
        self.chosen[rows] = self.w[rows, i]
        self.lo[rows], self.hi[rows] = lo32, hi32


class FactoredSlotLayer(SelectionLayer):
    """A slot layer trained through S = alpha * S0 + gamma * W (module docstring): parameters
    `alpha` (one per layer) and `gamma` (one per connection), buffers `weight` (the K values)
    and `scores0` (the scores when factored). `scores` is computed, for reading."""

    method = "slot"

    def __init__(self, spec: LayerSpec, values: torch.Tensor, scores0: torch.Tensor,
                 train_mode: str, eval_mode: str):
        super().__init__(spec)
        assert values.shape == scores0.shape and values.shape[:-1] == spec.shape
        self.register_buffer("weight", values)
        self.register_buffer("scores0", scores0)
        self.alpha = nn.Parameter(torch.ones((), dtype=scores0.dtype, device=scores0.device))
        self.gamma = nn.Parameter(torch.zeros(spec.shape, dtype=scores0.dtype,
                                              device=scores0.device))
        self.train_mode = train_mode
        self.eval_mode = eval_mode
        self._tracker: IncrementalArgmax | None = None
        self._k_first_copies: tuple[np.ndarray, np.ndarray] | None = None
        self._starts: np.ndarray | None = None

    @classmethod
    def from_layer(cls, layer: SlotLayer) -> "FactoredSlotLayer":
        """The same layer, its current scores as S0 (alpha = 1, gamma = 0)."""
        new = cls(layer.spec, layer.weight, layer.scores.detach().clone(), layer.train_mode,
                  layer.eval_mode)
        new.train(layer.training)
        return new

    K = SlotLayer.K
    _mode = SlotLayer._mode

    @property
    def scores(self) -> torch.Tensor:
        """The K-wide scores this layer represents: (alpha * S0) + (gamma * W), each product
        rounded on its own (what the host paths compute)."""
        return self.alpha * self.scores0 + self.gamma.unsqueeze(-1) * self.weight

    def _tracked(self) -> IncrementalArgmax | None:
        """The argmax tracker brought up to date with alpha and gamma; None where it does not
        apply (alpha <= 0 turns the argmax into an argmin of S0 + t W; off the CPU)."""
        alpha = float(self.alpha)
        if not (alpha > 0 and np.isfinite(alpha)) or not host_ok(self.gamma, self.weight,
                                                                   self.scores0):
            self._tracker = None
            return None
        if self._tracker is None:
            self._tracker = IncrementalArgmax(self.scores0, self.weight)
        self._tracker.update(ratio(self.gamma, self.alpha).reshape(-1).numpy())
        return self._tracker

    @torch.no_grad()
    def argmax(self) -> torch.Tensor:
        """argmax_j S (the tracker's, or computed from `scores` where it does not apply).
        Never cached by the parameters' version counters: the fused optimisers do not bump
        them; the tracker makes a repeated call cheap."""
        tracker = self._tracked()
        if tracker is None:
            return self.scores.argmax(-1)
        return torch.from_numpy(tracker.index.copy()).view(self.spec.shape)

    @torch.no_grad()
    def _chosen_by_argmax(self) -> torch.Tensor:
        tracker = self._tracked()
        if tracker is None:
            index = self.scores.argmax(-1)
            return self.weight.gather(-1, index.unsqueeze(-1)).squeeze(-1)
        return torch.from_numpy(tracker.chosen).view(self.spec.shape)  # FactoredGather copies

    @torch.no_grad()
    def sample(self) -> torch.Tensor:
        """`categorical_draw(self.scores)`, on the CPU built K-first straight from S0 and W."""
        if not host_ok(self.gamma, self.weight, self.scores0):
            return categorical_draw(self.scores)
        index, _ = self._host_draw(want_index=True)
        return torch.from_numpy(index).view(self.spec.shape)

    @torch.no_grad()
    def _chosen_by_sample(self) -> torch.Tensor:
        if not host_ok(self.gamma, self.weight, self.scores0):
            index = categorical_draw(self.scores)
            return self.weight.gather(-1, index.unsqueeze(-1)).squeeze(-1)
        _, chosen = self._host_draw(want_index=False)
        return torch.from_numpy(chosen).view(self.spec.shape)

    def _host_draw(self, want_index: bool) -> tuple[np.ndarray | None, np.ndarray]:
        """(index or None, chosen values) of one PS draw on the host: `fused.categorical_pick`
        (one pass, float32, numba), else numpy's K-first passes; the same uniforms either way."""
        s0, w = self._k_first()
        alpha = float(self.alpha)
        gamma = self.gamma.detach().reshape(-1).numpy()
        u = uniforms(gamma.size, gamma.dtype)
        if fused.available() and s0.dtype == w.dtype == np.float32:
            picked = fused.categorical_pick(s0, w, alpha, gamma, u, want_index)
            if picked is not None:   # None: some score not finite, defined by the numpy path
                return picked
        logits = np.empty_like(s0)
        scaled = np.empty_like(gamma)
        for j in range(s0.shape[0]):
            np.multiply(s0[j], np.asarray(alpha, dtype=s0.dtype), out=logits[j])
            np.add(logits[j], np.multiply(w[j], gamma, out=scaled), out=logits[j])
        index = draw_k_first(logits, u)
        flat = index + self._row_starts()   # a flat take: ~8x a gather
        return index, self.weight.reshape(-1).numpy()[flat]

    def _row_starts(self) -> np.ndarray:
        n = self.gamma.numel()
        if self._starts is None or self._starts.size != n:
            self._starts = np.arange(n, dtype=np.int64) * self.K
        return self._starts

    def _k_first(self) -> tuple[np.ndarray, np.ndarray]:
        if self._k_first_copies is None:
            K = self.K
            self._k_first_copies = tuple(
                np.ascontiguousarray(t.detach().reshape(-1, K).numpy().T)
                for t in (self.scores0, self.weight))
        return self._k_first_copies

    def index(self) -> torch.Tensor:
        return self.sample() if self._mode() == "sample" else self.argmax()

    def compute_weight(self) -> torch.Tensor:
        if self._mode() == "sample":
            chosen = self._chosen_by_sample()
        else:
            chosen = self._chosen_by_argmax()
        return FactoredGather.apply(chosen, self.alpha, self.gamma)

    def cache_key(self):
        # evaluation only: a training forward clears the base class's cache
        return None if self._mode() == "sample" else (self.alpha._version, self.gamma._version)

    @torch.no_grad()
    def selection(self):
        return self.argmax()

    @torch.no_grad()
    def set_index(self, index: torch.Tensor) -> None:
        """Make `index` the selection: one-hot S0, alpha 1, gamma 0 (a loaded network)."""
        self.scores0.copy_(F.one_hot(index.long(), self.K).to(self.scores0.dtype))
        self.alpha.fill_(1.0)
        self.gamma.zero_()
        self._tracker, self._k_first_copies = None, None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        same = self._same_frozen(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if not same:  # S0 or W changed: rebuilt at the next use
            self._tracker, self._k_first_copies = None, None

    def _same_frozen(self, state_dict, prefix) -> bool:
        """Whether loading `state_dict` leaves S0 and W as they are (a trainer swapping in the
        best-validation network and back): the argmax tracker then stays valid, and its
        envelopes (~0.4 s per million connections) are not rebuilt."""
        if self._tracker is None and self._k_first_copies is None:
            return False
        for name in ("scores0", "weight"):
            new, mine = state_dict.get(prefix + name), getattr(self, name)
            if new is None:
                continue
            if new.shape != mine.shape or new.device != mine.device or not torch.equal(new, mine):
                return False
        return True


def factorize(model: nn.Module) -> int:
    """Replace every `SlotLayer` of `model` by its `FactoredSlotLayer` (the same scores as S0).
    Only for SGD, and before the optimiser is built or a checkpoint is loaded. Returns how many
    layers were replaced."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is SlotLayer:
                setattr(parent, name, FactoredSlotLayer.from_layer(child))
                replaced += 1
    return replaced


def attach(model: nn.Module, cfg) -> None:
    """The slot methods' attach hook: factored scores whenever the optimiser is SGD, whose
    update keeps them exact in real arithmetic (Adam's is not linear: explicit scores)."""
    if cfg.optimizer == "sgd":
        factorize(model)


# --- what slot-gs and slot-ps share (each has its own file with its recipe) -----------------------
@dataclass(frozen=True)
class SlotOptions(SelectionOptions):
    K: int = param(8, "values per connection", ge=2, le=4096)
    score_init: str | None = param(None, "score distribution (default: the init preset's own, "
                                   "slot-code or slot-paper)", choices=SCORE_INITS)
    eval_mode: str = param("argmax", "evaluation pick: argmax (deterministic) or sample",
                           choices=("argmax", "sample"))


SLOT_INITS = ("slot-code", "slot-paper")   # presets that define values and scores together


def slot_recipe() -> dict:
    """The paper's schedule: SGD with warm restarts at epochs 25 and 75 of 200, momentum 0.9,
    batch 128, Glorot-uniform values (docs/recipes.md). With other epochs the restarts keep
    their place in the run (hiddenlab.config.fit_schedule)."""
    return dict(BASE_RECIPE, init="slot-code", schedule="sgdr", restarts=(25, 75), epochs=200)


class SlotMethod(Method):
    """slot-gs and slot-ps: one layer, a training pick of `train_pick`."""

    train_pick = "argmax"
    Options = SlotOptions
    packing = INDEX_BITS  # exported: ceil(log2 K) bits per connection

    def values_per_connection(self, opts) -> int:
        return opts.K

    def kept_fraction(self, opts) -> float:
        return 1.0

    def attach(self, model: nn.Module, cfg) -> None:
        attach(model, cfg)

    def layer(self, spec: LayerSpec, cfg) -> SlotLayer:
        o = cfg.options
        shape = (*spec.shape, o.K)
        values = init_weights(cfg.init, shape, spec.shape, 1.0)
        score_init = o.score_init or (cfg.init if cfg.init in SLOT_INITS else "slot-code")
        scores = init_scores(score_init, shape, spec.shape)
        return SlotLayer(spec, values, scores, self.train_pick, o.eval_mode)
