"""Any timm classification model by name (``model=timm model.net.name=convnext_atto``), built offline.

The model is ``timm.create_model(name, pretrained=False, num_classes=..., in_chans=...)`` kept as
``backbone``; its own classifier (timm's ``get_classifier()``: ``fc``, ``head.fc``, ``classifier``...) is the
head that ``lr_multipliers: {head: ...}`` and the fine-tuning callback name. Nothing is downloaded: pretrained
weights come from a local file through the model's ``pretrained_path`` (a timm ``model.safetensors`` or a
``pytorch_model.bin`` / ``.pth`` state dict); :meth:`TimmClassifier.adapt_pretrained` fits its first conv to
``in_channels`` the way timm does, and a classifier of another class count is skipped and reported.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lit_vision.errors import UserError

BACKBONE = "backbone"


def timm_model_names() -> list[str]:
    """Every architecture name ``timm.create_model`` accepts (without pretrained tags)."""
    import timm

    return list(timm.list_models())


def check_timm_name(name: str) -> None:
    """UserError for a name timm does not know, listing the closest known names."""
    import timm

    if timm.is_model(name):
        return
    architecture = name.split(".", 1)[0]
    close = difflib.get_close_matches(architecture, timm_model_names(), n=8, cutoff=0.6)
    hint = f"Close matches: {', '.join(close)}." if close else "No known name is close."
    raise UserError(
        f"model.net.name={name!r} is not a timm model. {hint} All names: "
        "python -c \"import timm; print(timm.list_models('*pattern*'))\"."
    )


def _module_paths(model: nn.Module, modules: tuple[nn.Module, ...]) -> list[str]:
    wanted = {id(m) for m in modules}
    return [name for name, module in model.named_modules() if id(module) in wanted and name]


class TimmClassifier(nn.Module):
    """A timm model (``resnet18``, ``convnext_atto``, ``efficientnet_b0``, ``vit_tiny_patch16_224``...) with
    ``num_classes`` outputs, randomly initialised (weights: the task's ``pretrained_path``).

    Args:
        name: a timm model name (``timm.list_models()``), optionally with a pretrained tag
            (``resnet18.a1_in1k``: only the tag's default config, e.g. its input size, is used).
        num_classes: outputs of the classifier.
        in_channels: input channels (timm's ``in_chans``).
        drop_rate: dropout before the classifier (timm's ``drop_rate``).
        drop_path_rate: stochastic depth, for the models that have it (timm's ``drop_path_rate``).
        model_kwargs: further keyword arguments of ``timm.create_model`` (e.g. ``{img_size: 64}`` for ViTs).
    """

    def __init__(
        self,
        name: str = "resnet18",
        num_classes: int = 10,
        in_channels: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        import timm

        check_timm_name(name)
        kwargs = dict(model_kwargs or {})
        if drop_path_rate is not None:
            kwargs["drop_path_rate"] = float(drop_path_rate)
        try:
            model = timm.create_model(
                name,
                pretrained=False,
                num_classes=int(num_classes),
                in_chans=int(in_channels),
                drop_rate=float(drop_rate),
                **kwargs,
            )
        except TypeError as exc:  # an argument the model's constructor does not take
            raise UserError(
                f"timm model {name!r} does not accept the arguments given ({exc}); check model.net.model_kwargs "
                "and model.net.drop_path_rate (null leaves it out)."
            ) from exc
        self.name = name
        self.in_channels = int(in_channels)
        self.backbone = model
        # what the classifier sees (MobileNetV3 and some others add a hidden layer after num_features)
        self.num_features = int(getattr(model, "head_hidden_size", None) or model.num_features)
        classifier = model.get_classifier()
        heads = classifier if isinstance(classifier, tuple) else (classifier,)
        paths = _module_paths(model, heads)
        if not paths:
            raise UserError(f"timm model {name!r} has no classifier module to train as the head")
        self.head_name = f"{BACKBONE}.{paths[0]}"
        # distilled models (DeiT) have a second classifier: trained, frozen and scaled with the first
        self.aux_head_names = tuple(f"{BACKBONE}.{p}" for p in paths[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features (what the classifier sees)."""
        return self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)

    def adapt_pretrained(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Fit a weights file to this model before loading: the first conv's RGB filters are summed (one
        channel) or tiled (more) as timm does for ``in_chans`` != 3. Keys may carry this net's prefix."""
        from timm.models import adapt_input_conv

        first_conv = self.backbone.pretrained_cfg.get("first_conv")
        if not first_conv or self.in_channels == 3:
            return state_dict
        convs = (first_conv,) if isinstance(first_conv, str) else tuple(first_conv)
        out = dict(state_dict)
        for conv in convs:
            for key in (f"{conv}.weight", f"{BACKBONE}.{conv}.weight", f"net.{BACKBONE}.{conv}.weight"):
                weight = out.get(key)
                if weight is not None and weight.ndim == 4 and weight.shape[1] == 3:
                    out[key] = adapt_input_conv(self.in_channels, weight)
        return out
