"""Layer-by-layer descriptions of the papers' small networks, for the architecture tables
(edge-popup Table 1, the Slot Machines setup table) and for finding fixed sub-network sizes.

Totals come from `hiddenlab.models.count_params(name, **kw)` when the models package provides it;
the analytic counts below (from docs architectures.md) give the conv/FC split the tables show and
stand in for the total when the models package cannot be imported. When both exist and disagree,
the table says so instead of silently picking one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    kind: str  # "conv" | "fc" | "pool"
    fan_in: int = 0
    fan_out: int = 0
    kernel: int = 1

    @property
    def params(self) -> int:  # no biases anywhere (both papers)
        return 0 if self.kind == "pool" else self.fan_in * self.fan_out * self.kernel ** 2


def ep_conv(depth: int, width_mult: float = 1.0, in_shape=(3, 32, 32), classes: int = 10):
    """edge-popup ConvN: pairs of 3x3 convs (padding 1) from 64 channels, doubling every pair, a
    pool after each pair, then FC 256, 256, classes; every hidden width x width_mult."""
    layers, c, hw = [], in_shape[0], in_shape[1]
    for i in range(depth):
        out = int(64 * 2 ** (i // 2) * width_mult)
        layers.append(Layer("conv", c, out, 3))
        c = out
        if i % 2 == 1:
            layers.append(Layer("pool"))
            hw //= 2
    return layers + _head(c * hw * hw, [int(256 * width_mult)] * 2, classes)


def slot_conv(depth: int, width_mult: float = 1.0, in_shape=(3, 32, 32), classes: int = 10):
    """Slot Machines CONV-2/4/6: padding 0 (CONV-6's last two convs padding 1), same head."""
    layers, c, hw = [], in_shape[0], in_shape[1]
    for i in range(depth):
        out = int(64 * 2 ** (i // 2) * width_mult)
        pad = 1 if (depth == 6 and i >= 4) else 0
        layers.append(Layer("conv", c, out, 3))
        hw = hw + 2 * pad - 2
        c = out
        if i % 2 == 1:
            layers.append(Layer("pool"))
            hw //= 2
    return layers + _head(c * hw * hw, [int(256 * width_mult)] * 2, classes)


def lenet(width_mult: float = 1.0, fan_in: int = 784, classes: int = 10):
    return _head(fan_in, [int(300 * width_mult), int(100 * width_mult)], classes)


def vgg19(width_mult: float = 1.0, in_ch: int = 3, classes: int = 10):
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
           512, 512, 512, 512]
    layers, c = [], in_ch
    for v in cfg:
        if v == "M":
            layers.append(Layer("pool"))
        else:
            out = int(v * width_mult)
            layers.append(Layer("conv", c, out, 3))
            c = out
    return layers + [Layer("pool"), Layer("fc", c, classes)]  # AvgPool 2 leaves 1x1


def _head(fan_in: int, hidden: list[int], classes: int):
    layers, f = [], fan_in
    for h in hidden + [classes]:
        layers.append(Layer("fc", f, h))
        f = h
    return layers


ANALYTIC = {
    **{f"conv{d}": (lambda d: lambda **kw: ep_conv(d, **kw))(d) for d in (2, 4, 6, 8)},
    **{f"slot-conv{d}": (lambda d: lambda **kw: slot_conv(d, **kw))(d) for d in (2, 4, 6)},
    "lenet-300-100": lenet,
    "fc": lenet,
    "vgg19": vgg19,
}


def layers_of(name: str, **kw) -> list[Layer] | None:
    f = ANALYTIC.get(name)
    return None if f is None else f(**kw)


def describe(layers: list[Layer]) -> tuple[str, str]:
    """('64, 64, pool, 128, 128, pool', '256, 256, 10') as the papers' tables write them."""
    conv, fc = [], []
    for layer in layers:
        if layer.kind == "conv":
            conv.append(str(layer.fan_out))
        elif layer.kind == "pool":
            if conv and not fc:
                conv.append("pool")
        else:
            fc.append(str(layer.fan_out))
    return ", ".join(conv) or "–", ", ".join(fc)


def analytic_params(name: str, **kw) -> dict | None:
    layers = layers_of(name, **kw)
    if layers is None:
        return None
    conv = sum(x.params for x in layers if x.kind == "conv")
    fc = sum(x.params for x in layers if x.kind == "fc")
    return {"conv": conv, "fc": fc, "total": conv + fc}


def model_params(name: str, **kw) -> tuple[int | None, str]:
    """(total connections, source). Prefers `hiddenlab.models.count_params`; falls back to the
    analytic count while the models package lacks it."""
    try:
        from hiddenlab.models import count_params  # type: ignore[attr-defined]
    except Exception:
        count_params = None
    if count_params is not None:
        try:
            return int(count_params(name, **kw)), "hiddenlab.models.count_params"
        except Exception as e:  # a model the registry lacks: say so in the table's source column
            a = analytic_params(name, **kw)
            return (a["total"] if a else None), f"analytic (count_params failed: {e})"
    a = analytic_params(name, **kw)
    return (a["total"] if a else None), "analytic (architectures.md)"
