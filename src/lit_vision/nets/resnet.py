"""ResNet-18/34/50/101/152 from torchvision's blocks, with a CIFAR stem option."""

from __future__ import annotations

import logging

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.models.resnet import ResNet as TorchvisionResNet

from lit_vision.nets.weights import (
    load_matching_state_dict,
    pretrained_loading_enabled,
    resolve_torchvision_weights,
    torchvision_state_dict,
)

log = logging.getLogger("lit_vision")

DEPTHS: dict[int, tuple[type[nn.Module], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}


class ResNet(TorchvisionResNet):
    """torchvision's ResNet (same module names, so torchvision/ImageNet state dicts load by name).

    Args:
        depth: 18, 34, 50, 101 or 152.
        cifar_stem: replace the 7x7/2 conv + max-pool stem by one 3x3/1 conv (the usual CIFAR variant, which
            keeps 32x32 inputs at 32x32 into layer1).
        zero_init_residual: start every residual branch's last BatchNorm at zero (each block the identity).
        weights: a torchvision weights name (``IMAGENET1K_V1``, ``DEFAULT``...) loaded by name and shape:
            layers whose shape differs (a CIFAR stem, another number of classes) keep their initialisation.
    """

    head_name = "fc"

    def __init__(
        self,
        depth: int = 18,
        num_classes: int = 10,
        in_channels: int = 3,
        cifar_stem: bool = False,
        zero_init_residual: bool = False,
        weights: str | None = None,
    ) -> None:
        if int(depth) not in DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
        block, layers = DEPTHS[int(depth)]
        super().__init__(block, layers, num_classes=num_classes, zero_init_residual=zero_init_residual)
        self.depth = int(depth)
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        elif in_channels != 3:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.num_features = 512 * block.expansion
        self.weights = weights
        if weights and pretrained_loading_enabled():
            member = resolve_torchvision_weights(f"resnet{self.depth}", str(weights))
            report = load_matching_state_dict(self, torchvision_state_dict(member), source=str(member))
            log.info("%s", report.summary())

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: global-average-pooled layer4 output."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))
