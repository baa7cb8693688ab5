"""Any torchvision classification model by name, with its head replaced for ``num_classes``.

The model is built by ``torchvision.models.get_model(name)``; its ImageNet classifier (the last layer with
1,000 outputs) becomes ``nn.Identity`` inside ``backbone`` and a new ``head`` (``nn.Linear``) maps the
penultimate features to ``num_classes``. Auxiliary classifiers (Inception v3's ``AuxLogits.fc``,
GoogLeNet's ``aux1.fc2``/``aux2.fc2``) are replaced in place; in training mode the net then returns the
tuple ``(logits, aux_logits...)`` and the classification task adds the auxiliary losses with a weight.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lit_vision.nets.weights import (
    pretrained_loading_enabled,
    resolve_torchvision_weights,
    torchvision_state_dict,
)

log = logging.getLogger("lit_vision")

IMAGENET_CLASSES = 1000
# Models with auxiliary classifiers: built with them when weights are loaded (the files contain them).
AUX_MODELS = ("inception_v3", "googlenet")


def list_classification_models() -> list[str]:
    """Names accepted by :class:`TorchvisionClassifier` (torchvision's classification builders)."""
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def _classifier_layers(model: nn.Module) -> list[str]:
    """Paths of the layers that output the 1,000 ImageNet classes, in definition order."""
    names = []
    for name, module in model.named_modules():
        if (isinstance(module, nn.Linear) and module.out_features == IMAGENET_CLASSES) or (
            isinstance(module, nn.Conv2d)
            and module.out_channels == IMAGENET_CLASSES
            and module.kernel_size == (1, 1)
        ):
            names.append(name)
    return names


def _in_features(layer: nn.Module) -> int:
    return int(layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels)


def _adapt_first_conv(model: nn.Module, in_channels: int) -> None:
    """Give the first conv ``in_channels`` inputs; pretrained RGB filters are summed (grey) or tiled."""
    name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    if conv.in_channels == in_channels:
        return
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        conv.bias is not None,
    )
    with torch.no_grad():
        if in_channels == 1:
            new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        else:
            repeats = -(-in_channels // conv.in_channels)
            tiled = conv.weight.repeat(1, repeats, 1, 1)[:, :in_channels]
            new.weight.copy_(tiled * (conv.in_channels / in_channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    model.set_submodule(name, new)


class TorchvisionClassifier(nn.Module):
    """A torchvision classification model (``resnet50``, ``vgg16``, ``densenet121``, ``inception_v3``,
    ``mobilenet_v3_large``, ``efficientnet_b0``, ``vit_b_16``...) with a new head for ``num_classes``.

    Args:
        name: a torchvision builder name (see ``torchvision.models.list_models()``).
        num_classes: outputs of the new head (and of the auxiliary heads).
        weights: a weights name of that model (``IMAGENET1K_V1``, ``DEFAULT``...) or null for random
            initialisation. Weights come from the torch hub cache or are downloaded; offline and not cached
            this fails with the URL and the path to copy the file to.
        in_channels: input channels; other than 3, the first conv is rebuilt (pretrained filters summed for
            one channel, tiled otherwise).
        aux_logits: keep Inception v3 / GoogLeNet auxiliary classifiers (trained with a weighted loss).
        dropout: dropout before the new head (0: none; the model's own dropout layers stay).
        model_kwargs: extra arguments of the torchvision builder (e.g. ``{dropout: 0.2}``, ``{image_size: 160}``).
    """

    head_name = "head"

    def __init__(
        self,
        name: str = "resnet18",
        num_classes: int = 10,
        weights: str | None = None,
        in_channels: int = 3,
        aux_logits: bool = True,
        dropout: float = 0.0,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        import torchvision

        available = list_classification_models()
        if name not in available:
            raise ValueError(f"unknown torchvision classification model {name!r}; choose one of {available}")
        self.name = name
        self.weights = weights
        kwargs = dict(model_kwargs or {})
        if name in AUX_MODELS:
            # The weight files hold the auxiliary classifiers and expect ImageNet-normalised inputs
            # re-scaled by transform_input (what torchvision's own builders do when given weights).
            kwargs.setdefault("aux_logits", True if weights else bool(aux_logits))
            kwargs.setdefault("init_weights", not weights)
            kwargs.setdefault("transform_input", bool(weights) and in_channels == 3)
        model = torchvision.models.get_model(name, weights=None, num_classes=IMAGENET_CLASSES, **kwargs)
        if weights and pretrained_loading_enabled():
            member = resolve_torchvision_weights(name, str(weights))
            model.load_state_dict(torchvision_state_dict(member))
            log.info("Loaded torchvision weights %s into %s", member, name)
        if name in AUX_MODELS and not aux_logits:
            model.aux_logits = False
            for attr in ("AuxLogits", "aux1", "aux2"):
                if hasattr(model, attr):
                    setattr(model, attr, None)
        if in_channels != 3:
            _adapt_first_conv(model, in_channels)

        *aux_names, main_name = _classifier_layers(model)
        main = model.get_submodule(main_name)
        for aux in aux_names:
            model.set_submodule(aux, nn.Linear(_in_features(model.get_submodule(aux)), num_classes))
        model.set_submodule(main_name, nn.Identity())
        self.backbone = model
        self.num_features = _in_features(main)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(self.num_features, num_classes)
        self.aux_head_names = tuple(f"backbone.{n}" for n in aux_names)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (what the ImageNet classifier used to see), flattened."""
        out = self.backbone(x)
        if isinstance(out, tuple):  # InceptionOutputs / GoogLeNetOutputs while training
            out = out[0]
        return torch.flatten(out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out = self.backbone(x)
        if isinstance(out, tuple):
            features, *aux = out
            return (self.head(self.dropout(torch.flatten(features, 1))), *aux)
        return self.head(self.dropout(torch.flatten(out, 1)))
