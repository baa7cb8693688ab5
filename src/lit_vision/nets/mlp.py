"""A fully connected classifier over flattened images (the tutorials' 784-128-256-10 MNIST network)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


def make_activation(name: str) -> nn.Module:
    """An activation module by name (relu, gelu, sigmoid, tanh, leaky_relu, silu)."""
    try:
        return ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


class MLP(nn.Module):
    """Flatten -> [Linear -> (BatchNorm) -> activation -> (Dropout)] per hidden size -> Linear head.

    ``in_features`` defaults to ``in_channels * image_size**2`` (784 for MNIST), so the same config works for
    any image size. The classifier is ``head``.
    """

    head_name = "head"

    def __init__(
        self,
        num_classes: int = 10,
        hidden: Sequence[int] = (128, 256),
        in_channels: int = 1,
        image_size: int = 28,
        in_features: int | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        width = int(in_features or in_channels * image_size * image_size)
        layers: list[nn.Module] = [nn.Flatten(1)]
        for size in hidden:
            layers.append(nn.Linear(width, int(size)))
            if batch_norm:
                layers.append(nn.BatchNorm1d(int(size)))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(size)
        self.layers = nn.Sequential(*layers)
        self.num_features = width
        self.head = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: the last hidden layer's activations."""
        return self.layers(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
