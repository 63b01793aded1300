"""How an exported network file (hiddenlab.study.netexport) stores one layer: the plug-in half of
`hiddenlab export`.

A network found by selection is its architecture, the seed that drew its frozen values and which
values were selected. Each method declares one `Packing` (`Method.packing`):

* `MASK_BITS`  one bit per connection: the evaluation mask (edge-popup, Zhou supermask).
* `INDEX_BITS` ceil(log2 K) bits per connection: the value picked of K (slot machines).
* `FLOATS`     the evaluation weight as it is (learned weights: dense, finetune; the fallback
               for a method that declares nothing).
* `REDRAWN`    nothing at all: frozen values all kept (a frozen dense first/last layer).
* `KEPT_VALUES` the mask and the kept values as they are: for a method whose frozen values change
               while training (IteRand re-draws pruned weights), so the seed no longer redraws
               them; 1 + 32 k bits per connection.

The file never holds the frozen values of a bit packing: the loader redraws them from the seed and
`install`s the selection into the redrawn layer, whose own `materialize()` then gives the
evaluation weight. So the loaded network computes what the trial's did, with the trial's code.
`frozen` names what the seed redraws: the exporter checks it against the trial's checkpoint and the
loader against its checksum.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


class Packing:
    """Stores nothing and installs nothing: the redrawn layer is the trial's layer."""

    name = "redrawn"

    def bits(self, layer) -> float:
        """Bits stored per connection of `layer` (the theory)."""
        return 0

    def nbytes(self, layer) -> int:
        """Bytes of the arrays `pack` writes for `layer` (any device, meta included)."""
        return 0

    def frozen(self, layer) -> dict[str, torch.Tensor]:
        """The layer's tensors drawn from the seed and never changed by training: the exporter
        checks them against the trial's checkpoint, the loader against their checksums."""
        return dict(layer.named_buffers(recurse=False))

    def pack(self, layer) -> dict[str, np.ndarray]:
        """Arrays that hold the layer's evaluation selection (`layer` is in eval mode, with the
        trial's state and its model's evaluation forward done)."""
        return {}

    @torch.no_grad()
    def install(self, layer, arrays: dict[str, np.ndarray]) -> None:
        """Put the packed selection into a freshly redrawn `layer`."""

    def weight(self, layer, arrays: dict[str, np.ndarray]) -> torch.Tensor:
        """The evaluation weight, after `install` and the model's evaluation forward."""
        return layer.materialize()


class MaskBits(Packing):
    """One bit per connection. Installed as scores 1 (kept) and 0 (not): a top-k of |scores| keeps
    exactly the ones (the mask has the count top-k keeps), and sigmoid(1) > 0.5 >= sigmoid(0)."""

    name = "mask-bits"

    def bits(self, layer) -> float:
        return 1

    def nbytes(self, layer) -> int:
        return packed_bytes(1, layer.connections)

    def pack(self, layer):
        mask = layer.kept().detach().cpu().numpy().reshape(-1)
        return {"mask": np.packbits(mask)}

    @torch.no_grad()
    def install(self, layer, arrays):
        n = layer.scores.numel()
        mask = np.unpackbits(arrays["mask"], count=n).astype(bool)
        layer.scores.copy_(torch.from_numpy(mask).view_as(layer.scores))


class IndexBits(Packing):
    """ceil(log2 K) bits per connection, one bit-plane after another (plane b holds bit b of every
    index). Installed as one-hot scores, whose argmax is the index."""

    name = "index-bits"

    def bits(self, layer) -> int:
        return max(1, math.ceil(math.log2(layer.weight.shape[-1])))

    def nbytes(self, layer) -> int:
        return packed_bytes(self.bits(layer), layer.connections)

    def pack(self, layer):
        index = layer.selection().detach().cpu().numpy().reshape(-1)
        return {"index": pack_uint(index, self.bits(layer))}

    @torch.no_grad()
    def install(self, layer, arrays):
        K = layer.weight.shape[-1]
        n = layer.scores.numel() // K
        index = unpack_uint(arrays["index"], n, self.bits(layer))
        if index.max(initial=0) >= K:
            raise ValueError(f"an index >= K = {K}")
        onehot = F.one_hot(torch.from_numpy(index), K).to(layer.scores.dtype)
        layer.scores.copy_(onehot.view_as(layer.scores))


class Floats(Packing):
    """The evaluation weight itself (32 bits per connection in float32)."""

    name = "floats"

    def bits(self, layer) -> int:
        return torch.finfo(layer.weight.dtype).bits

    def nbytes(self, layer) -> int:
        return layer.connections * layer.weight.element_size()

    def frozen(self, layer):
        return {}

    def pack(self, layer):
        return {"weight": layer.materialize().cpu().numpy()}

    def weight(self, layer, arrays):
        return torch.from_numpy(arrays["weight"].copy())


class KeptValues(MaskBits):
    """The mask, then the kept values in the mask's (row-major) order, as training left them.
    The seed redraws the values nobody kept; they do not reach the evaluation weight."""

    name = "mask-bits+kept-values"

    def bits(self, layer) -> float:
        return 1 + torch.finfo(layer.weight.dtype).bits * kept_count(layer) / layer.connections

    def nbytes(self, layer) -> int:
        return super().nbytes(layer) + kept_count(layer) * layer.weight.element_size()

    def frozen(self, layer):
        return {}

    def pack(self, layer):
        kept = layer.kept().detach()
        return {**super().pack(layer), "values": layer.weight.detach()[kept].cpu().numpy()}

    @torch.no_grad()
    def install(self, layer, arrays):
        super().install(layer, arrays)
        kept = np.unpackbits(arrays["mask"], count=layer.connections).astype(bool)
        layer.weight.view(-1)[torch.from_numpy(kept)] = torch.from_numpy(arrays["values"].copy())


def kept_count(layer) -> int:
    """Connections `layer` keeps at evaluation; on the meta device, its per-layer top-k's count."""
    if layer.weight.is_meta:
        return layer.connections - int((1.0 - layer.k) * layer.connections)
    return int(layer.kept().sum())


def packed_bytes(bits: int, n: int) -> int:
    """Bytes of n values of `bits` bits: bit-planes of ceil(n/8) bytes each."""
    return bits * -(-n // 8)


def pack_uint(values: np.ndarray, bits: int) -> np.ndarray:
    """Non-negative integers < 2**bits as `bits` packed bit-planes of len(values) bits each."""
    v = values.astype(np.uint32)
    return np.concatenate([np.packbits(((v >> b) & 1).astype(np.uint8)) for b in range(bits)])


def unpack_uint(data: np.ndarray, n: int, bits: int) -> np.ndarray:
    plane = (n + 7) // 8
    out = np.zeros(n, dtype=np.int64)
    for b in range(bits):
        out |= np.unpackbits(data[b * plane:(b + 1) * plane], count=n).astype(np.int64) << b
    return out


REDRAWN = Packing()
MASK_BITS = MaskBits()
INDEX_BITS = IndexBits()
FLOATS = Floats()
KEPT_VALUES = KeptValues()
