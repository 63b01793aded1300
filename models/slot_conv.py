"""Slot Machines' CONV-2/4/6 as one family: pairs of 3x3 convs doubling channels from 64, padding
0 except where an unpadded pair would pool the map away (CONV-6's last pair, padding 1 — the
reference's layout, which this rule reproduces for 2, 4 and 6), 2x2 max-pool after each pair;
classifier Dropout, FC 256, ReLU, Dropout, FC 256, ReLU, FC classes (dropout 0.5)."""

from __future__ import annotations

from torch import nn

from .conv import classifier
from .shapes import check_spatial


def build_slot_conv(layers, input_shape, num_classes, width_mult, depth, dropout):
    c, h, w = input_shape
    body: list[nn.Module] = []
    for pair in range(depth // 2):
        out = max(1, int(64 * 2**pair * width_mult))
        pad = 0 if (min(h, w) - 4) // 2 >= 1 else 1
        for j in range(2):
            role = "first" if pair == 0 and j == 0 else None
            body += [layers.conv(c, out, 3, padding=pad, role=role), nn.ReLU(inplace=True)]
            c = out
            h, w = h - 2 + 2 * pad, w - 2 + 2 * pad
        body.append(nn.MaxPool2d(2))
        h, w = h // 2, w // 2
        check_spatial(h, w, input_shape, f"slot-conv{depth}")
    return nn.Sequential(*body, *classifier(layers, c * h * w, num_classes, width_mult, dropout))
