"""LeNet as in the FashionMNIST TensorBoard tutorial: conv5-pool-conv5-pool then 120-84-classes."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class LeNet(nn.Module):
    """conv1 (6 maps, 5x5) -> ReLU -> max-pool 2 -> conv2 (16 maps, 5x5) -> ReLU -> max-pool 2 ->
    fc1 (120) -> fc2 (84) -> fc3 (classes).

    Layer names follow the tutorial, so its state dicts load as they are. With 28x28 inputs the flattened
    size is 16 * 4 * 4 = 256; other sizes are computed from ``image_size``. ``fc3`` is the head.
    """

    head_name = "fc3"

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"LeNet needs images of at least 12x12 pixels, got image_size={image_size}")
        self.num_features = 84
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: the 84 activations before the classifier."""
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return F.relu(self.fc2(F.relu(self.fc1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.forward_features(x))
