"""VGG-19 of the Slot Machines paper: 3x3 convs (padding 1) each followed by BatchNorm
(non-affine for selection methods) and ReLU, max-pools between stages, then AvgPool 2 and one
FC 512 -> classes."""

from __future__ import annotations

from torch import nn

from .shapes import check_spatial

PLAN = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
        512, 512, 512, 512]


def build_vgg19(layers, input_shape, num_classes, width_mult, depth, dropout):
    c, h, w = input_shape
    body: list[nn.Module] = []
    for i, item in enumerate(PLAN):
        if item == "M":
            body.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
            continue
        out = max(1, int(item * width_mult))
        body += [layers.conv(c, out, 3, padding=1, role="first" if i == 0 else None),
                 layers.bn(out), nn.ReLU(inplace=True)]
        c = out
    pool = 2 if min(h, w) >= 2 else 1
    h, w = h // pool, w // pool
    check_spatial(h, w, input_shape, "vgg19")
    head = [nn.AvgPool2d(pool), nn.Flatten()]
    if dropout:
        head.append(nn.Dropout(dropout))
    head.append(layers.linear(c * h * w, num_classes, role="last"))
    return nn.Sequential(*body, *head)
