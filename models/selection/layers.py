"""What every selection layer shares: a frozen weight (or K of them), trainable scores, and a
forward that applies F.conv2d / F.linear to `effective_weight()`; plus the two plain layers
(learned dense, frozen dense) any method's model may hold.

Each method subclasses `SelectionLayer` and implements `compute_weight` and `selection`.
Deterministic selections are cached in eval mode keyed by the scores' version counter, which
every optimiser step and `load_state_dict` bumps: evaluation recomputes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LayerSpec:
    """Geometry of one conv (out, in, kh, kw) or linear (out, in) layer."""

    shape: tuple[int, ...]
    stride: int = 1
    padding: int = 0

    @property
    def is_conv(self) -> bool:
        return len(self.shape) == 4

    @property
    def connections(self) -> int:
        return math.prod(self.shape)


class SelectionLayer(nn.Module):
    """Base class: forward = op(x, effective_weight())."""

    method: str = "?"

    def __init__(self, spec: LayerSpec):
        super().__init__()
        self.spec = spec
        self._cache: tuple[int, torch.Tensor] | None = None

    @property
    def connections(self) -> int:
        """Connections (weight entries) of this layer: no K, no scores, no biases."""
        return self.spec.connections

    # -- to implement -------------------------------------------------------------------------
    def compute_weight(self) -> torch.Tensor:
        """The weight the forward pass uses (autograd reaches the scores straight through)."""
        raise NotImplementedError

    def selection(self) -> torch.Tensor | None:
        """The deterministic selection (bool mask or value index) used to count flips; None for
        layers that select nothing."""
        return None

    def kept(self) -> torch.Tensor | None:
        """Bool mask of connections used at evaluation (None: all of them)."""
        return None

    @torch.no_grad()
    def kept_count(self) -> float:
        """Connections used at evaluation (an expectation where evaluation samples)."""
        mask = self.kept()
        return float(self.connections if mask is None else mask.sum())

    def cache_key(self) -> int | None:
        """A number that changes whenever the evaluation weight would; None disables caching."""
        return None

    # -- shared -------------------------------------------------------------------------------
    def effective_weight(self) -> torch.Tensor:
        if self.training:
            self._cache = None
            return self.compute_weight()
        key = self.cache_key()
        if key is None:
            return self.compute_weight()
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self.compute_weight())
        return self._cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.effective_weight()
        if self.spec.is_conv:
            return F.conv2d(x, w, None, self.spec.stride, self.spec.padding)
        return F.linear(x, w)

    @torch.no_grad()
    def materialize(self) -> torch.Tensor:
        """The evaluation weight as a plain tensor (finetuning starts from it)."""
        was = self.training
        self.eval()
        try:
            return self.effective_weight().detach().clone()
        finally:
            self.train(was)

    def frozen_values(self) -> torch.Tensor:
        """The fixed random values behind the selection (for selected/unselected histograms)."""
        return self.weight

    def extra_repr(self) -> str:
        s = f"shape={tuple(self.spec.shape)}"
        if self.spec.is_conv:
            s += f", stride={self.spec.stride}, padding={self.spec.padding}"
        return s


class DenseLayer(SelectionLayer):
    """Learned weights: the dense baseline, a finetuned network, a learned dense first/last
    layer."""

    method = "dense"

    def __init__(self, spec: LayerSpec, weight: torch.Tensor):
        super().__init__(spec)
        self.weight = nn.Parameter(weight)

    def compute_weight(self) -> torch.Tensor:
        return self.weight

    def cache_key(self):
        return None  # the weight is used as is: nothing to cache


class FrozenLayer(SelectionLayer):
    """Frozen random weights, all kept: the dense first/last layer of a selection network as the
    edge-popup reference has it."""

    method = "frozen"

    def __init__(self, spec: LayerSpec, weight: torch.Tensor):
        super().__init__(spec)
        self.register_buffer("weight", weight)

    def compute_weight(self) -> torch.Tensor:
        return self.weight

    def cache_key(self):
        return None


def selection_layers(model: nn.Module) -> list[tuple[str, SelectionLayer]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SelectionLayer)]


@torch.no_grad()
def selection_histograms(layers, bins: int = 50) -> dict[str, dict[str, list]]:
    """Per layer: histogram counts of the frozen values that were selected and of those that
    were not (for slot machines: the chosen value vs the K-1 others of each connection). The
    unselected counts are all values' minus the selected ones' (a value falls in the same bin
    either way), which spares a pass over the K-wide values."""
    out = {}
    for name, layer in layers:
        sel = layer.selection()
        if sel is None:
            continue
        values = layer.frozen_values().float().cpu()
        sel = sel.cpu()
        if sel.dtype == torch.bool:
            chosen = values[sel]
        else:
            chosen = values.gather(-1, sel.long().unsqueeze(-1))
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            hi = lo + 1e-12
        edges = torch.linspace(lo, hi, bins + 1)
        every = torch.histc(values, bins, lo, hi).long()
        selected = torch.histc(chosen, bins, lo, hi).long()
        out[name] = {"bins": edges.tolist(), "selected": selected.tolist(),
                     "unselected": (every - selected).tolist()}
    return out
