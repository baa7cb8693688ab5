"""The network of the PyTorch MNIST example: conv-conv-maxpool-dropout-fc-dropout-fc (log-softmax output)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MnistNet(nn.Module):
    """conv1 (32, 3x3) -> ReLU -> conv2 (64, 3x3) -> ReLU -> max-pool 2 -> Dropout(0.25) -> fc1 (128) ->
    ReLU -> Dropout(0.5) -> fc2 (classes) [-> log_softmax].

    On 28x28 inputs fc1 sees 64 * 12 * 12 = 9216 features. With ``log_softmax`` (the example's default) the
    output is log-probabilities: train it with ``torch.nn.NLLLoss``. Layer names follow the example, so its
    saved state dicts load as they are. ``fc2`` is the head.
    """

    head_name = "fc2"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        dropout1: float = 0.25,
        dropout2: float = 0.5,
        log_softmax: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(dropout1)
        self.dropout2 = nn.Dropout(dropout2)
        side = (image_size - 4) // 2
        if side < 1:
            raise ValueError(f"MnistNet needs images of at least 6x6 pixels, got image_size={image_size}")
        self.num_features = 128
        self.fc1 = nn.Linear(64 * side * side, 128)
        self.fc2 = nn.Linear(128, num_classes)
        self.log_softmax = bool(log_softmax)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: the 128 fc1 activations (before the second dropout)."""
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        x = self.dropout1(F.max_pool2d(x, 2))
        return F.relu(self.fc1(torch.flatten(x, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(self.dropout2(self.forward_features(x)))
        return F.log_softmax(x, dim=1) if self.log_softmax else x
