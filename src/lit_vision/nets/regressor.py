"""Regression nets: an MLP for table rows, a linear model, and image backbones with a one-unit head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from lit_vision.nets.cnn import SimpleCNN
from lit_vision.nets.mlp import make_activation
from lit_vision.nets.torchvision_classifier import TorchvisionClassifier


def _check_in_features(in_features: int | None, model: str) -> int:
    if in_features is None:
        raise ValueError(
            f"{model}: in_features is null. It comes from data.num_features, which tabular DataModules "
            "(data=tabular, temps, linear_toy) report; other data gives images, use model=image_regressor."
        )
    return int(in_features)


class MLPRegressor(nn.Module):
    """``[Linear -> activation -> (Dropout)]`` per hidden size, then ``Linear(.., out_features)``.

    With the tutorial's settings (``hidden=[128]``, ``activation=sigmoid``) this is its temperature
    network. ``linear_skip`` adds a linear model of the inputs to the output (a "wide and deep" net): the
    hidden layers then learn a correction to a linear fit, which keeps extrapolation linear.
    ``deep_inputs`` limits what the hidden layers see to some input columns (with ``linear_skip``: a
    partially linear model, linear in every input plus a learned curve of those columns, e.g. a seasonal
    curve of month and day).

    Args:
        in_features: inputs per row (``data.num_features``).
        out_features: targets per row.
        hidden: hidden layer widths (empty: a linear model).
        activation: relu, gelu, sigmoid, tanh, leaky_relu or silu.
        dropout: dropout after each hidden activation (0: none).
        linear_skip: add ``Linear(in_features, out_features)(x)`` to the output.
        deep_inputs: positions of the input columns the hidden layers take (null: all). Tabular inputs are
            the numeric columns in file order, then the one-hot columns (``data_info["feature_names"]``).
    """

    def __init__(
        self,
        in_features: int | None,
        out_features: int = 1,
        hidden: Sequence[int] = (128,),
        activation: str = "relu",
        dropout: float = 0.0,
        linear_skip: bool = False,
        deep_inputs: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        inputs = _check_in_features(in_features, "MLPRegressor")
        self.deep_inputs: list[int] | None = None
        width = inputs
        if deep_inputs is not None:
            self.deep_inputs = [int(i) for i in deep_inputs]
            if not self.deep_inputs or any(not 0 <= i < inputs for i in self.deep_inputs):
                raise ValueError(
                    f"deep_inputs {self.deep_inputs} must be positions 0..{inputs - 1} of the inputs"
                )
            self.register_buffer("_deep_index", torch.tensor(self.deep_inputs), persistent=False)
            width = len(self.deep_inputs)
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, int(size)), make_activation(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(float(dropout)))
            width = int(size)
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(width, int(out_features))
        self.skip = nn.Linear(inputs, int(out_features)) if linear_skip else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = x if self.deep_inputs is None else x.index_select(1, self._deep_index)
        out = self.head(self.layers(deep))
        if self.skip is not None:
            out = out + self.skip(x)
        return out


class LinearRegressor(nn.Module):
    """``y = x @ W^T + b`` (the first lesson's ``nn.Linear(1, 1)``); ``linear`` holds W and b."""

    def __init__(self, in_features: int | None, out_features: int = 1) -> None:
        super().__init__()
        self.linear = nn.Linear(_check_in_features(in_features, "LinearRegressor"), int(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def image_regressor(
    backbone: str = "simple_cnn",
    in_channels: int = 3,
    image_size: int = 64,
    num_outputs: int = 1,
    weights: str | None = None,
    dropout: float = 0.0,
    channels: Sequence[int] = (16, 32),
    kernel_size: int = 5,
    model_kwargs: Mapping[str, Any] | None = None,
) -> nn.Module:
    """An image backbone with a ``num_outputs``-unit linear head.

    ``backbone="simple_cnn"``: the tutorials' small CNN (:class:`~lit_vision.nets.cnn.SimpleCNN`, sized by
    ``channels``/``kernel_size``/``image_size``); any other name is a torchvision classification model
    (``resnet18``, ``resnet34``, ``mobilenet_v3_small``...) whose classifier is replaced, optionally
    starting from ``weights`` (e.g. ``IMAGENET1K_V1``; null: random initialisation, which needs no download).
    """
    if backbone == "simple_cnn":
        return SimpleCNN(
            in_channels=int(in_channels),
            num_classes=int(num_outputs),
            image_size=int(image_size),
            channels=tuple(int(c) for c in channels),
            kernel_size=int(kernel_size),
            dropout=float(dropout),
        )
    return TorchvisionClassifier(
        name=backbone,
        num_classes=int(num_outputs),
        weights=weights,
        in_channels=int(in_channels),
        dropout=float(dropout),
        model_kwargs=model_kwargs,
    )
