"""edge-popup's Conv2/4/6/8 (Table 1 of the paper) as one family ConvN for any even N:
pairs of 3x3 convs (padding 1, no bias, ReLU) doubling channels from 64, a 2x2 max-pool after each
pair, then FC 256, 256, classes. Every width except the classes is int(w * width_mult)."""

from __future__ import annotations

from torch import nn

from .shapes import check_spatial


def build_conv(layers, input_shape, num_classes, width_mult, depth, dropout):
    c, h, w = input_shape
    body: list[nn.Module] = []
    for pair in range(depth // 2):
        out = max(1, int(64 * 2**pair * width_mult))
        for j in range(2):
            role = "first" if pair == 0 and j == 0 else None
            body += [layers.conv(c, out, 3, padding=1, role=role), nn.ReLU(inplace=True)]
            c = out
        body.append(nn.MaxPool2d(2))
        h, w = h // 2, w // 2
        check_spatial(h, w, input_shape, f"conv{depth}")
    return nn.Sequential(*body, *classifier(layers, c * h * w, num_classes, width_mult, dropout))


def classifier(layers, fan_in, num_classes, width_mult, dropout):
    """FC 256, ReLU, FC 256, ReLU, FC classes, with optional dropout before each hidden FC."""
    hidden = max(1, int(256 * width_mult))
    head: list[nn.Module] = [nn.Flatten()]
    for a, b in ((fan_in, hidden), (hidden, hidden)):
        if dropout:
            head.append(nn.Dropout(dropout))
        head += [layers.linear(a, b), nn.ReLU(inplace=True)]
    head.append(layers.linear(hidden, num_classes, role="last"))
    return head
