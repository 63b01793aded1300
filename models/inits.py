"""Weight and score distributions (docs/inits.md).

Every weight init is a function `(shape, fans, k) -> Tensor` drawn from the global torch RNG, so a
trial's seed fixes it. `shape` may carry a trailing K axis (slot machines: K values per
connection); `fans` are always those of the layer without it.

`scaled_<name>` multiplies the std by 1/sqrt(k), k the fraction KEPT, so that the kept
sub-network has the variance the unscaled init gives a dense layer. The edge-popup reference
scales the fan by (1 - k) instead (right only at k = 0.5, its issue #9): that formula is offered
beside it as `scaled_<name>_code`, so the paper's published "scaled" curves can be rerun as they
were made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from hiddenlab.config import INITS, SCORE_INITS, ConfigError

GAIN_RELU = math.sqrt(2.0)


@dataclass(frozen=True)
class Fans:
    fan_in: int
    fan_out: int
    is_linear: bool  # Slot Machines' paper preset treats FC layers differently (lambda = 0.1)


def fans_of(base_shape: tuple[int, ...]) -> Fans:
    """Fans of a conv weight (out, in, kh, kw) or linear weight (out, in)."""
    receptive = math.prod(base_shape[2:]) if len(base_shape) > 2 else 1
    return Fans(base_shape[1] * receptive, base_shape[0] * receptive, len(base_shape) == 2)


def kaiming_std(f: Fans) -> float:
    return GAIN_RELU / math.sqrt(f.fan_in)


def xavier_std(f: Fans) -> float:
    return math.sqrt(2.0 / (f.fan_in + f.fan_out))


def _normal(std: float, shape) -> torch.Tensor:
    return torch.randn(shape) * std


def _signed(c: float, shape) -> torch.Tensor:
    # sign uniform: Bernoulli(0.5) -> {-1, +1}
    return (torch.randint(0, 2, shape).float() * 2 - 1) * c


def _uniform(bound: float, shape, low: float | None = None) -> torch.Tensor:
    low = -bound if low is None else low
    return torch.rand(shape) * (bound - low) + low


_BASE: dict[str, Callable[[tuple, Fans, float], torch.Tensor]] = {
    "kaiming_normal": lambda s, f, m: _normal(kaiming_std(f) * m, s),
    "kaiming_uniform": lambda s, f, m: _uniform(math.sqrt(3.0) * kaiming_std(f) * m, s),
    "signed_constant": lambda s, f, m: _signed(kaiming_std(f) * m, s),
    "unsigned_constant": lambda s, f, m: torch.full(s, kaiming_std(f) * m),
    "xavier_normal": lambda s, f, m: _normal(xavier_std(f) * m, s),
    "xavier_constant": lambda s, f, m: _signed(xavier_std(f) * m, s),
}


def _slot_code(s, f, m):
    # Reference code: Glorot uniform values, b = sqrt(6 / (fan_in + fan_out)).
    return _uniform(math.sqrt(6.0 / (f.fan_in + f.fan_out)) * m, s)


def _slot_paper(s, f, m):
    # Paper: U(-sigma_x, sigma_x) with sigma_x the Glorot normal std.
    return _uniform(xavier_std(f) * m, s)


InitFn = Callable[[tuple, Fans, float], torch.Tensor]


def _scale_correct(k: float) -> float:
    return 1.0 / math.sqrt(k)


def _scale_code(k: float) -> float:
    # The reference multiplies fan by (1 - prune_rate) with prune_rate the fraction KEPT.
    if k >= 1.0:
        raise ConfigError("init", "the reference code's scaled init divides by 1 - k: k must "
                          "be < 1 (use the scaled_ form, 1/sqrt(k), for k = 1)")
    return 1.0 / math.sqrt(1.0 - k)


@dataclass(frozen=True)
class Init:
    draw: InitFn
    scale: Callable[[float], float] | None = None  # std multiplier as a function of k


for _name, _fn in _BASE.items():
    INITS.add(_name, Init(_fn))
    INITS.add("scaled_" + _name, Init(_fn, _scale_correct))
    INITS.add("scaled_" + _name + "_code", Init(_fn, _scale_code))
INITS.add("slot-code", Init(_slot_code))
INITS.add("slot-paper", Init(_slot_paper))


def init_weights(name: str, shape: tuple[int, ...], base_shape: tuple[int, ...], k: float = 1.0
                 ) -> torch.Tensor:
    """Draw frozen (or initial) weights of `shape` for a layer whose weight is `base_shape`."""
    init = INITS.get(name)
    mult = init.scale(k) if init.scale is not None else 1.0
    return init.draw(tuple(shape), fans_of(base_shape), mult)


# --- scores -------------------------------------------------------------------------------------
for _name in ("kaiming_uniform", "kaiming_uniform_relu", "constant", "slot-code", "slot-paper",
              "normal"):
    SCORE_INITS.add(_name, _name)


def init_scores(name: str, shape: tuple[int, ...], base_shape: tuple[int, ...],
                const: float = 0.0) -> torch.Tensor:
    f = fans_of(base_shape)
    if name == "kaiming_uniform":
        # edge-popup reference: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        return _uniform(1.0 / math.sqrt(f.fan_in), shape)
    if name == "kaiming_uniform_relu":
        # IteRand reference: kaiming_uniform_(mode="fan_in", nonlinearity="relu"), i.e. a = 0:
        # U(-sqrt(6/fan_in), sqrt(6/fan_in)), sqrt(6) times edge-popup's.
        return _uniform(math.sqrt(6.0 / f.fan_in), shape)
    if name == "constant":
        return torch.full(tuple(shape), float(const))
    if name == "slot-code":
        return _uniform(math.sqrt(6.0 / (f.fan_in + f.fan_out)), shape, low=0.0)
    if name == "slot-paper":
        lam = 0.1 if f.is_linear else 1.0
        return _uniform(lam * xavier_std(f), shape, low=0.0)
    if name == "normal":
        return torch.randn(tuple(shape)) * 0.01
    raise ConfigError("score_init", f"{name!r} is not one of {', '.join(SCORE_INITS.names())}")
