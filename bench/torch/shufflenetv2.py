"""ShuffleNetV2 (CIFAR variant) in PyTorch, written from dtrain's own description
(src/model/architecture.ts, src/model/shufflenetv2.ts) so that the benchmarks time the same
network on both sides: same layers in the same order, same state_dict names and shapes.

Every conv is bias-free and followed by BatchNorm2d (eps 1e-5, momentum 0.1); 3x3 convs are
depthwise except the stem and use symmetric padding 1; blocks end in a channel shuffle with
groups 2; the head is a 1x1 conv, avg_pool2d(4) and a linear layer.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    0.5: ((48, 96, 192, 1024), (3, 7, 3)),
    1: ((116, 232, 464, 1024), (3, 7, 3)),
    1.5: ((176, 352, 704, 1024), (3, 7, 3)),
    2: ((224, 488, 976, 2048), (3, 7, 3)),
}
NUM_CLASSES = 10


def channel_shuffle(x, groups=2):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)


class ConvBnChain(nn.Module):
    """convK + bnK pairs registered alternately (dtrain's state_dict order), ReLU where asked."""

    def __init__(self, specs, first_index=1):
        super().__init__()
        self.relus = []
        for i, (cin, cout, kernel, stride, depthwise, relu) in enumerate(specs, start=first_index):
            conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=cin if depthwise else 1, bias=False)
            self.add_module(f'conv{i}', conv)
            self.add_module(f'bn{i}', nn.BatchNorm2d(cout))
            self.relus.append(relu)
        self.first_index = first_index

    def run(self, x, start, stop):
        for i in range(start, stop):
            x = getattr(self, f'bn{i}')(getattr(self, f'conv{i}')(x))
            if self.relus[i - self.first_index]:
                x = F.relu(x)
        return x


class BasicBlock(ConvBnChain):
    """Split the channels in halves; the second goes through 1x1 (ReLU), depthwise 3x3, 1x1 (ReLU)."""

    def __init__(self, channels):
        half = int(channels * 0.5)
        super().__init__([(half, half, 1, 1, False, True), (half, half, 3, 1, True, False), (half, half, 1, 1, False, True)])
        self.split_at = half

    def forward(self, x):
        x1, x2 = x[:, : self.split_at], x[:, self.split_at :]
        return channel_shuffle(torch.cat([x1, self.run(x2, 1, 4)], 1))


class DownBlock(ConvBnChain):
    """Left: depthwise 3x3 s2, 1x1 (ReLU). Right: 1x1 (ReLU), depthwise 3x3 s2, 1x1 (ReLU)."""

    def __init__(self, cin, cout):
        mid = cout // 2
        super().__init__([
            (cin, cin, 3, 2, True, False), (cin, mid, 1, 1, False, True),
            (cin, mid, 1, 1, False, True), (mid, mid, 3, 2, True, False), (mid, mid, 1, 1, False, True),
        ])

    def forward(self, x):
        return channel_shuffle(torch.cat([self.run(x, 1, 3), self.run(x, 3, 6)], 1))


class ShuffleNetV2(nn.Module):
    def __init__(self, size):
        super().__init__()
        out_channels, num_blocks = CONFIGS[size]
        self.conv1 = nn.Conv2d(3, 24, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        cin = 24
        for layer, (cout, blocks) in enumerate(zip(out_channels[:3], num_blocks), start=1):
            self.add_module(f'layer{layer}', nn.Sequential(DownBlock(cin, cout), *[BasicBlock(cout) for _ in range(blocks)]))
            cin = cout
        self.conv2 = nn.Conv2d(cin, out_channels[3], 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels[3])
        self.linear = nn.Linear(out_channels[3], NUM_CLASSES)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.avg_pool2d(x, 4)
        return self.linear(x.flatten(1))
