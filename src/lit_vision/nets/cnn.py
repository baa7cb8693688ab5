"""The tutorials' small convolutional classifier."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SimpleCNN(nn.Module):
    """Conv blocks (conv k x k, 'same' padding -> ReLU -> max-pool 2) followed by one linear classifier.

    With the defaults on 28x28 MNIST this is the tutorials' CNN: 1->16->32 channels, 5x5 kernels,
    32*7*7 features into Linear(.., 10). ``image_size`` only sizes the classifier, which is ``classifier``.
    """

    head_name = "classifier"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        channels: Sequence[int] = (16, 32),
        kernel_size: int = 5,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        prev = in_channels
        for width in channels:
            blocks += [
                nn.Conv2d(prev, width, kernel_size, stride=1, padding=kernel_size // 2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            prev = width
        self.features = nn.Sequential(*blocks)
        with torch.no_grad():
            n_features = self.features(torch.zeros(1, in_channels, image_size, image_size)).numel()
        self.num_features = n_features
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(n_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (flattened conv output)."""
        return torch.flatten(self.features(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.forward_features(x)))
