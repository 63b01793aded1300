"""ResNets in the torchvision layout (edge-popup's `models/resnet.py`): ImageNet ResNet-18/34/50/101
and Wide ResNet-50-2 (7x7/2 stem, max-pool, v1.5 bottlenecks with the stride on the 3x3), and the
CIFAR ResNet-18 (3x3/1 stem, no max-pool). No biases; the FC follows global average pooling;
BatchNorm is non-affine for selection methods. Widths scale with width_mult."""

from __future__ import annotations

from torch import nn

from .shapes import check_spatial


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, layers, cin, planes, stride, base_width=64):
        super().__init__()
        self.conv1 = layers.conv(cin, planes, 3, stride, 1)
        self.bn1 = layers.bn(planes)
        self.conv2 = layers.conv(planes, planes, 3, 1, 1)
        self.bn2 = layers.bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(layers, cin, planes * self.expansion, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, layers, cin, planes, stride, base_width=64):
        super().__init__()
        width = int(planes * base_width / 64)
        self.conv1 = layers.conv(cin, width, 1)
        self.bn1 = layers.bn(width)
        self.conv2 = layers.conv(width, width, 3, stride, 1)
        self.bn2 = layers.bn(width)
        self.conv3 = layers.conv(width, planes * self.expansion, 1)
        self.bn3 = layers.bn(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(layers, cin, planes * self.expansion, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _downsample(layers, cin, cout, stride):
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(layers.conv(cin, cout, 1, stride), layers.bn(cout))


class ResNet(nn.Module):
    def __init__(self, layers, block, stages, input_shape, num_classes, width_mult,
                 imagenet_stem=True, base_width=64):
        super().__init__()
        c, h, w = input_shape
        planes = max(1, int(64 * width_mult))
        if imagenet_stem:
            self.stem = nn.Sequential(layers.conv(c, planes, 7, 2, 3, role="first"),
                                      layers.bn(planes), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, 1))
            h, w = h // 4, w // 4
        else:
            self.stem = nn.Sequential(layers.conv(c, planes, 3, 1, 1, role="first"),
                                      layers.bn(planes), nn.ReLU(inplace=True))
        check_spatial(h, w, input_shape, "resnet")
        cin = planes
        stage_modules = []
        for i, n in enumerate(stages):
            p = max(1, int(64 * 2**i * width_mult))
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(layers, cin, p, stride, base_width))
                cin = p * block.expansion
            stage_modules.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stage_modules
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = layers.linear(cin, num_classes, role="last")

    def forward(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.pool(x)))


def _resnet(block, stages, imagenet_stem=True, base_width=64):
    def build(layers, input_shape, num_classes, width_mult, depth, dropout):
        return ResNet(layers, block, stages, input_shape, num_classes, width_mult,
                      imagenet_stem, base_width)

    return build


build_resnet18 = _resnet(BasicBlock, [2, 2, 2, 2])
build_resnet34 = _resnet(BasicBlock, [3, 4, 6, 3])
build_resnet50 = _resnet(Bottleneck, [3, 4, 6, 3])
build_resnet101 = _resnet(Bottleneck, [3, 4, 23, 3])
build_wide_resnet50_2 = _resnet(Bottleneck, [3, 4, 6, 3], base_width=128)
build_cifar_resnet18 = _resnet(BasicBlock, [2, 2, 2, 2], imagenet_stem=False)
