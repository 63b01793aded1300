"""Fully connected nets: edge-popup's `fc` (MNIST 784-300-100-10) and Slot Machines'
`lenet-300-100` (the same layers). No biases; hidden widths scale with width_mult."""

from __future__ import annotations

import math

from torch import nn


def build_mlp(layers, input_shape, num_classes, width_mult, depth, dropout, hidden=(300, 100)):
    widths = [math.prod(input_shape)] + [max(1, int(h * width_mult)) for h in hidden]
    body: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        body += [layers.linear(a, b, role="first" if i == 0 else None), nn.ReLU(inplace=True)]
        if dropout:
            body.append(nn.Dropout(dropout))
    body.append(layers.linear(widths[-1], num_classes, role="last"))
    return nn.Sequential(*body)
