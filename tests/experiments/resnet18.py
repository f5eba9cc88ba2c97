"""A torchvision-style ResNet-18 (BasicBlocks [2, 2, 2, 2], stride-2 downsampling with 1x1 projections,
zero-initialised last BatchNorm of each block), built here from plain torch at a quarter of the width,
trained with SGD + momentum on small synthetic images in channels_last memory format.

A healthy control: `bpviz check` must exit 0 on it.
"""

import torch
from torch import nn

CLASSES = 4


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, width: int = 16, classes: int = CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        planes = [width, 2 * width, 4 * width, 8 * width]
        layers, inplanes = [], width
        for i, p in enumerate(planes):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(inplanes, p, stride), BasicBlock(p, p)))
            inplanes = p
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * width, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)  # torchvision's zero_init_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def make_batches(generator: torch.Generator, batches: int, size: int = 16) -> list:
    """32x32 colour images: one of four colour-and-orientation patterns, plus noise."""
    ramp = torch.linspace(-3, 3, 32)
    patterns = torch.stack(
        [
            torch.stack([torch.sin(ramp[:, None] * 2).expand(32, 32)] * 3),
            torch.stack([torch.sin(ramp[None, :] * 2).expand(32, 32)] * 3),
            torch.stack([torch.ones(32, 32), torch.zeros(32, 32), -torch.ones(32, 32)]),
            torch.stack([-torch.ones(32, 32), torch.ones(32, 32), torch.zeros(32, 32)]),
        ]
    )
    data = []
    for _ in range(batches):
        labels = torch.randint(CLASSES, (size,), generator=generator)
        images = patterns[labels] + 0.5 * torch.randn(size, 3, 32, 32, generator=generator)
        data.append((images.contiguous(memory_format=torch.channels_last), labels))
    return data


def build() -> dict:
    generator = torch.Generator().manual_seed(0)
    model = ResNet18().to(memory_format=torch.channels_last)
    return {
        "model": model,
        "train_data": make_batches(generator, 8),
        "val_data": make_batches(generator, 2),
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4),
    }
